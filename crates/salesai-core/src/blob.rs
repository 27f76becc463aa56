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

    /// Streams bytes `range` of the blob under `key` (the audio player's HTTP Range requests).
    /// The default reads from the start and skips; stores that can ask for a range do.
    async fn get_range(
        &self,
        key: &BlobKey,
        range: std::ops::Range<u64>,
    ) -> Result<ByteStream, BlobError> {
        use futures_util::StreamExt;
        let whole = self.get_stream(key).await?;
        Ok(Box::pin(whole.scan(0u64, move |pos, item| {
            let out = match item {
                Err(err) => Some(Err(err)),
                Ok(_) if *pos >= range.end => None,
                Ok(bytes) => {
                    let start = *pos;
                    let end = start + bytes.len() as u64;
                    *pos = end;
                    let (lo, hi) = (range.start.max(start), range.end.min(end));
                    Some(Ok(if lo < hi {
                        bytes.slice((lo - start) as usize..(hi - start) as usize)
                    } else {
                        Bytes::new()
                    }))
                }
            };
            futures_util::future::ready(out)
        })))
    }

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

/// What [`store_limited`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes written.
    pub bytes: u64,
    /// The first 64 bytes, for sniffing the content.
    pub head: Vec<u8>,
}

/// Why [`store_limited`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreLimitedError {
    /// The source went past the limit.
    #[error("larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The source failed (an upload or download cut off).
    #[error("cut off: {0}")]
    Source(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(BlobError),
}

/// Streams `source` into `blobs` under `key`, at most `limit` bytes, keeping the first 64 bytes
/// for sniffing; on any failure the partial blob is deleted. The source may borrow (a multipart
/// field borrows its request): its chunks are forwarded through a small channel, so memory
/// stays at a few chunks whatever the size.
pub async fn store_limited<S, E>(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    source: S,
    limit: u64,
) -> Result<Stored, StoreLimitedError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, BlobError>>(4);
    let stream: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let pump = async move {
        let mut source = std::pin::pin!(source);
        let mut head = Vec::with_capacity(64);
        let mut seen = 0u64;
        while let Some(chunk) = source.next().await {
            let failure = match chunk {
                Ok(chunk) => {
                    seen += chunk.len() as u64;
                    if head.len() < 64 {
                        let take = (64 - head.len()).min(chunk.len());
                        head.extend_from_slice(&chunk[..take]);
                    }
                    if seen <= limit {
                        if tx.send(Ok(chunk)).await.is_err() {
                            break; // storage gave up; its error is reported
                        }
                        continue;
                    }
                    StoreLimitedError::TooLarge(limit)
                }
                Err(err) => StoreLimitedError::Source(err.to_string()),
            };
            let _ = tx.send(Err(BlobError::Source(failure.to_string()))).await;
            return Err(failure);
        }
        Ok(head)
    };
    let (stored, pumped) = futures_util::future::join(blobs.put_stream(key, stream), pump).await;
    let outcome = match (pumped, stored) {
        (Err(failure), _) => Err(failure),
        (Ok(_), Err(err)) => Err(StoreLimitedError::Storage(err)),
        (Ok(head), Ok(bytes)) => return Ok(Stored { bytes, head }),
    };
    let _ = blobs.delete(key).await;
    outcome
}

#[cfg(test)]
mod store_limited_tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use futures_util::StreamExt;

    use super::*;

    /// Blobs in memory: enough to watch `store_limited` store and clean up.
    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, Vec<u8>>>);

    #[async_trait]
    impl BlobStore for Memory {
        fn describe(&self) -> String {
            "memory".into()
        }
        async fn put_stream(
            &self,
            key: &BlobKey,
            mut stream: ByteStream,
        ) -> Result<u64, BlobError> {
            let mut all = Vec::new();
            while let Some(chunk) = stream.next().await {
                all.extend_from_slice(&chunk?);
            }
            let n = all.len() as u64;
            self.0.lock().unwrap().insert(key.as_str().into(), all);
            Ok(n)
        }
        async fn get_stream(&self, key: &BlobKey) -> Result<ByteStream, BlobError> {
            Err(BlobError::NotFound(key.as_str().into()))
        }
        async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
            Ok(self
                .0
                .lock()
                .unwrap()
                .get(key.as_str())
                .map(|b| b.len() as u64))
        }
        async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
            self.0.lock().unwrap().remove(key.as_str());
            Ok(())
        }
    }

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> {
        futures_util::stream::iter(parts.into_iter().map(|p| p.map(Bytes::from_static)))
    }

    #[tokio::test]
    async fn stores_counts_and_keeps_the_head() {
        let blobs = Memory::default();
        let key = BlobKey::parse("uploads/a").unwrap();
        let stored = store_limited(
            &blobs,
            &key,
            chunks(vec![Ok(b"ID3"), Ok(&[7u8; 100])]),
            1000,
        )
        .await
        .unwrap();
        assert_eq!(stored.bytes, 103);
        assert_eq!(stored.head.len(), 64);
        assert!(stored.head.starts_with(b"ID3"));
        assert_eq!(blobs.size(&key).await.unwrap(), Some(103));
    }

    #[tokio::test]
    async fn too_large_or_cut_off_leaves_nothing() {
        let blobs = Memory::default();
        let key = BlobKey::parse("uploads/b").unwrap();
        let err = store_limited(
            &blobs,
            &key,
            chunks(vec![Ok(&[1u8; 60]), Ok(&[1u8; 60])]),
            100,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StoreLimitedError::TooLarge(100)), "{err}");
        assert_eq!(blobs.size(&key).await.unwrap(), None);
        let err = store_limited(
            &blobs,
            &key,
            chunks(vec![Ok(b"abc"), Err("reset by peer")]),
            100,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, StoreLimitedError::Source(m) if m == "reset by peer"),
            "{err}"
        );
        assert_eq!(blobs.size(&key).await.unwrap(), None);
    }
}
