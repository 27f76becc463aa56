//! Blob storage: where recordings and transcripts live. One trait, implemented over a local
//! folder or an S3-compatible bucket in `salesai-providers`.
//!
//! Architecture invariant: blobs move as streams of chunks; no code path holds a whole
//! recording in memory (the original held it in a 128 MB worker and fell over).

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::domain::InvalidInput;

/// A stream of a blob's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send>>;

/// A blob storage failure.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob under that key.
    #[error("blob {0} not found")]
    NotFound(String),
    /// The storage failed or could not be reached.
    #[error("blob storage failed: {0}")]
    Unavailable(String),
    /// The stream being stored failed (the upload was cut off, or was too large).
    #[error("{0}")]
    Source(String),
}

/// A blob's key: `/`-separated segments of letters, digits, `.`, `_` and `-`, never `..`.
///
/// Keys are built by salesai (`audio/2026/11/<uuid>.flac`), never taken from user input as is,
/// so no upload can name its way out of its folder or over another's file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

impl BlobKey {
    /// Checks a key.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let bad = || InvalidInput(format!("blob key {raw:?} is not a safe relative path"));
        if raw.is_empty() || raw.len() > 512 {
            return Err(bad());
        }
        for segment in raw.split('/') {
            if segment.is_empty()
                || segment == "."
                || segment == ".."
                || !segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(bad());
            }
        }
        Ok(BlobKey(raw.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobKey {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        BlobKey::parse(&value)
    }
}

impl From<BlobKey> for String {
    fn from(value: BlobKey) -> Self {
        value.0
    }
}

/// A place to keep blobs.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A description for logs and `storage check`, without credentials.
    fn describe(&self) -> String;

    /// Stores a stream under `key`, replacing any blob there; returns the bytes written. The
    /// blob appears only once the whole stream is stored.
    async fn put_stream(&self, key: &BlobKey, stream: ByteStream) -> Result<u64, BlobError>;

    /// Streams the blob under `key`.
    async fn get_stream(&self, key: &BlobKey) -> Result<ByteStream, BlobError>;

    /// The size of the blob under `key`, or `None` when there is none.
    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError>;

    /// Deletes the blob under `key`; deleting a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_escapes() {
        assert!(BlobKey::parse("audio/2026/11/abc.flac").is_ok());
        for bad in [
            "",
            "/abs",
            "a//b",
            "../x",
            "a/../b",
            "a/./b",
            "a\\b",
            "a b",
            "trailing/",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
