//! Blob storage over the `object_store` crate: a local folder (the embedded default) or any
//! S3-compatible bucket (Cloudflare R2, AWS S3, MinIO).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use salesai_core::blob::{BlobError, BlobKey, BlobStore, ByteStream};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;

/// Where blobs go, parsed from `SALESAI_BLOB_URL` and the S3 settings.
#[derive(Debug, Clone)]
pub enum BlobConfig {
    /// A folder on this machine.
    Local {
        /// The folder; created when missing.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket's settings. `Debug` never shows the secret key.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// The endpoint, e.g. `https://<account>.r2.cloudflarestorage.com`; `None` for AWS.
    pub endpoint: Option<String>,
    /// The region (`auto` for R2).
    pub region: String,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<SecretString>,
    /// Allow `http://` endpoints (local MinIO or test servers).
    pub allow_http: bool,
    /// Use virtual-hosted-style requests (`bucket.endpoint`) instead of path style.
    pub virtual_hosted_style: bool,
}

impl BlobConfig {
    /// Parses a blob URL: `s3://bucket[/prefix]`, `file:///path`, or a plain folder path. The
    /// S3 fields other than bucket and prefix come from `s3`.
    pub fn parse(url: &str, s3: S3Config) -> Result<BlobConfig, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "blob URL {url:?} names no bucket; use s3://BUCKET/PREFIX"
                ));
            }
            Ok(BlobConfig::S3(S3Config {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                ..s3
            }))
        } else if let Some(path) = url.strip_prefix("file://") {
            Ok(BlobConfig::Local { root: path.into() })
        } else if url.contains("://") {
            Err(format!(
                "blob URL {url:?} is not supported; use a folder path, file:///path or s3://bucket/prefix"
            ))
        } else {
            Ok(BlobConfig::Local { root: url.into() })
        }
    }
}

/// Blob storage backed by an `object_store` implementation.
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    description: String,
}

/// The size of each uploaded part: S3's minimum, so a streamed upload holds at most a couple of
/// parts in memory, whatever the file's size.
const PART_SIZE: usize = 5 * 1024 * 1024;

impl ObjectBlobStore {
    /// Blobs in a local folder (created when missing): the embedded default, and tests'.
    pub fn folder(root: &std::path::Path) -> Result<ObjectBlobStore, BlobError> {
        ObjectBlobStore::open(&BlobConfig::Local {
            root: root.to_path_buf(),
        })
    }

    /// Opens the configured storage; a local folder is created when missing.
    pub fn open(config: &BlobConfig) -> Result<ObjectBlobStore, BlobError> {
        match config {
            BlobConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| {
                    BlobError::Unavailable(format!(
                        "cannot create blob folder {}: {e}",
                        root.display()
                    ))
                })?;
                let fs = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| BlobError::Unavailable(e.to_string()))?;
                Ok(ObjectBlobStore {
                    inner: Arc::new(fs),
                    prefix: String::new(),
                    description: format!("local folder {}", root.display()),
                })
            }
            BlobConfig::S3(s3) => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http)
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret.expose_secret());
                }
                let store = builder
                    .build()
                    .map_err(|e| BlobError::Unavailable(format!("invalid S3 settings: {e}")))?;
                Ok(ObjectBlobStore {
                    inner: Arc::new(store),
                    prefix: s3.prefix.clone(),
                    description: format!(
                        "s3://{}/{} at {}",
                        s3.bucket,
                        s3.prefix,
                        s3.endpoint.as_deref().unwrap_or("AWS")
                    ),
                })
            }
        }
    }

    fn path(&self, key: &BlobKey) -> Path {
        if self.prefix.is_empty() {
            Path::from(key.as_str())
        } else {
            Path::from(format!("{}/{}", self.prefix, key.as_str()))
        }
    }
}

fn unavailable(err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
        other => BlobError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn put_stream(&self, key: &BlobKey, mut stream: ByteStream) -> Result<u64, BlobError> {
        let mut writer = BufWriter::with_capacity(self.inner.clone(), self.path(key), PART_SIZE)
            .with_max_concurrency(2);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    // Nothing half-written is left behind: the multipart upload is aborted.
                    let _ = writer.abort().await;
                    return Err(err);
                }
            };
            written += chunk.len() as u64;
            if let Err(err) = writer.put(chunk).await {
                let _ = writer.abort().await;
                return Err(unavailable(err));
            }
        }
        writer
            .shutdown()
            .await
            .map_err(|e| BlobError::Unavailable(e.to_string()))?;
        Ok(written)
    }

    async fn get_stream(&self, key: &BlobKey) -> Result<ByteStream, BlobError> {
        let result = self.inner.get(&self.path(key)).await.map_err(unavailable)?;
        Ok(Box::pin(result.into_stream().map_err(unavailable)))
    }

    async fn get_range(
        &self,
        key: &BlobKey,
        range: std::ops::Range<u64>,
    ) -> Result<ByteStream, BlobError> {
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(range)),
            ..Default::default()
        };
        let result = self
            .inner
            .get_opts(&self.path(key), options)
            .await
            .map_err(unavailable)?;
        Ok(Box::pin(result.into_stream().map_err(unavailable)))
    }

    async fn size(&self, key: &BlobKey) -> Result<Option<u64>, BlobError> {
        match self.inner.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }
}

/// What `salesai storage check` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    /// The storage probed.
    pub storage: String,
    /// The probe object's key.
    pub key: String,
    /// Bytes written and read back.
    pub bytes: u64,
    /// Time to write.
    pub write_ms: f64,
    /// Time to read back (and compare).
    pub read_ms: f64,
    /// Time to delete.
    pub delete_ms: f64,
}

/// Writes, reads back, compares and deletes a probe object: the runbook's "test file access".
pub async fn probe(blobs: &dyn BlobStore) -> Result<ProbeReport, BlobError> {
    let key = BlobKey::parse(&format!("probes/{}.bin", uuid::Uuid::now_v7()))
        .map_err(|e| BlobError::Source(e.0))?;
    let body: Bytes = (0..64 * 1024u32).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(body.clone())]));
    let bytes = blobs.put_stream(&key, stream).await?;
    let write = started.elapsed();
    let started = Instant::now();
    let mut read = Vec::with_capacity(body.len());
    let mut stream = blobs.get_stream(&key).await?;
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk?);
    }
    let read_time = started.elapsed();
    let started = Instant::now();
    blobs.delete(&key).await?;
    let delete = started.elapsed();
    if read != body {
        return Err(BlobError::Unavailable(
            "the probe object read back differs from what was written".into(),
        ));
    }
    if blobs.size(&key).await?.is_some() {
        return Err(BlobError::Unavailable(
            "the probe object is still there after delete".into(),
        ));
    }
    let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
    Ok(ProbeReport {
        storage: blobs.describe(),
        key: key.as_str().to_owned(),
        bytes,
        write_ms: ms(write),
        read_ms: ms(read_time),
        delete_ms: ms(delete),
    })
}
