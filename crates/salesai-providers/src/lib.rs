//! Clients for the world outside salesai's process. Vendor wire formats stay in this crate;
//! what leaves it are the core's types and traits.

pub mod blob;
pub mod llm;
pub mod stt;
