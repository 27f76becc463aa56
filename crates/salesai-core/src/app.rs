//! The one context object every handler and job receives.

use std::sync::Arc;

use crate::blob::BlobStore;
use crate::metrics::Metrics;
use crate::store::Store;

/// What a request handler or a job needs from the outside world, chosen once by the binary.
///
/// Architecture invariant: only the binary builds an `App` (it reads configuration and picks
/// the implementations); everyone else receives one and sees only the core traits.
#[derive(Clone)]
pub struct App {
    /// Everything salesai stores.
    pub store: Arc<dyn Store>,
    /// Where recordings and transcripts live.
    pub blobs: Arc<dyn BlobStore>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The team's time zone: case-number months and daily reports use its boundaries.
    pub time_zone: chrono_tz::Tz,
}
