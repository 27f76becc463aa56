//! salesai's core: the domain's types, its pure logic and the traits through which the rest of
//! the program reaches the outside world.
//!
//! Architecture invariant: this crate does no IO. It knows nothing of SQL, HTTP or object
//! storage; it names what salesai needs (`Store`, `BlobStore`) and the other crates provide it.
//! That keeps the rules of the product (case numbers, queue backoff, error codes) testable in
//! microseconds and identical for every backend.

pub mod access;
pub mod analysis;
pub mod app;
pub mod audio;
pub mod blob;
pub mod breaker;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod intake;
pub mod language;
pub mod media;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod product_line;
pub mod queue;
pub mod report;
pub mod speakers;
pub mod speech;
pub mod store;
pub mod stt;
pub mod talk;
pub mod token;
pub mod transcript;

pub use app::App;
pub use error::ErrorCode;
