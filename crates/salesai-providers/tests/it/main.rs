//! Provider clients against real servers where they can run here (moto's S3, a Whisper
//! server) and local stubs speaking the vendors' exact wire formats where they cannot.

mod blob;
mod llm;
mod stt;
