//! Blob storage against a local folder always, and against a real S3-compatible server when
//! `SALESAI_TEST_S3_ENDPOINT` is set (CI starts moto's server; a missing server fails CI).

use bytes::Bytes;
use futures_util::StreamExt;
use salesai_core::blob::{BlobError, BlobKey, BlobStore, ByteStream};
use salesai_providers::blob::{BlobConfig, ObjectBlobStore, S3Config, probe};
use secrecy::SecretString;

fn s3_defaults() -> S3Config {
    S3Config {
        bucket: String::new(),
        prefix: String::new(),
        endpoint: None,
        region: "us-east-1".into(),
        access_key_id: None,
        secret_access_key: None,
        allow_http: false,
        virtual_hosted_style: false,
    }
}

async fn s3_store() -> Option<ObjectBlobStore> {
    let endpoint = match std::env::var("SALESAI_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("SALESAI_TEST_S3_ENDPOINT is not set but CI=true: S3 tests must run in CI");
            }
            eprintln!("note: SALESAI_TEST_S3_ENDPOINT not set; skipping the S3 variant");
            return None;
        }
    };
    let bucket = format!("salesai-test-{}", uuid_like());
    // moto creates buckets on an unsigned PUT.
    let status = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("reach the S3 test server")
        .status();
    assert!(status.is_success(), "create bucket: {status}");
    let config = BlobConfig::parse(
        &format!("s3://{bucket}/tenant-a"),
        S3Config {
            endpoint: Some(endpoint),
            access_key_id: Some("test".into()),
            secret_access_key: Some(SecretString::from("test")),
            allow_http: true,
            ..s3_defaults()
        },
    )
    .unwrap();
    Some(ObjectBlobStore::open(&config).unwrap())
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn chunks(total: usize, chunk: usize) -> (ByteStream, Vec<u8>) {
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
    let parts: Vec<Result<Bytes, BlobError>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    (Box::pin(futures_util::stream::iter(parts)), data)
}

async fn read_all(blobs: &dyn BlobStore, key: &BlobKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = blobs.get_stream(key).await.unwrap();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn blob_story(blobs: &dyn BlobStore) {
    // 12 MiB in 64 KiB pieces: more than two multipart parts.
    let key = BlobKey::parse("audio/2026/11/call.flac").unwrap();
    let (stream, data) = chunks(12 * 1024 * 1024 + 17, 64 * 1024);
    assert_eq!(
        blobs.put_stream(&key, stream).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(blobs.size(&key).await.unwrap(), Some(data.len() as u64));
    assert!(
        read_all(blobs, &key).await == data,
        "round trip is byte-exact"
    );

    // A small blob replaces a big one entirely.
    let (stream, small) = chunks(10, 3);
    blobs.put_stream(&key, stream).await.unwrap();
    assert_eq!(read_all(blobs, &key).await, small);

    // A source that fails midway leaves nothing behind.
    let broken = BlobKey::parse("audio/broken.mp3").unwrap();
    let parts: Vec<Result<Bytes, BlobError>> = vec![
        Ok(Bytes::from(vec![1u8; 6 * 1024 * 1024])),
        Err(BlobError::Source("upload cut off".into())),
    ];
    let err = blobs
        .put_stream(&broken, Box::pin(futures_util::stream::iter(parts)))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Source(_)));
    assert_eq!(blobs.size(&broken).await.unwrap(), None);

    blobs.delete(&key).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert_eq!(blobs.size(&key).await.unwrap(), None);
    assert!(matches!(
        blobs.get_stream(&key).await.err(),
        Some(BlobError::NotFound(_))
    ));

    let report = probe(blobs).await.unwrap();
    assert_eq!(report.bytes, 64 * 1024);
}

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let config = BlobConfig::parse(root.to_str().unwrap(), s3_defaults()).unwrap();
    let blobs = ObjectBlobStore::open(&config).unwrap();
    assert!(blobs.describe().contains("local folder"));
    blob_story(&blobs).await;
    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|e| {
                if e.path().is_dir() {
                    files(&e.path())
                } else {
                    vec![e.path()]
                }
            })
            .collect()
    }
    assert_eq!(
        files(&root),
        Vec::<std::path::PathBuf>::new(),
        "deleted, aborted and probe objects leave no file behind"
    );
}

#[tokio::test]
async fn s3_compatible_server() {
    let Some(blobs) = s3_store().await else {
        return;
    };
    assert!(blobs.describe().starts_with("s3://"));
    blob_story(&blobs).await;
}

#[tokio::test]
async fn s3_outage_is_reported() {
    let config = BlobConfig::parse(
        "s3://nowhere/x",
        S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("a".into()),
            secret_access_key: Some(SecretString::from("b")),
            allow_http: true,
            ..s3_defaults()
        },
    )
    .unwrap();
    let blobs = ObjectBlobStore::open(&config).unwrap();
    let err = probe(&blobs).await.unwrap_err();
    assert!(matches!(err, BlobError::Unavailable(_)), "{err}");
}

#[test]
fn blob_urls_parse() {
    assert!(matches!(
        BlobConfig::parse("./data/blobs", s3_defaults()).unwrap(),
        BlobConfig::Local { .. }
    ));
    match BlobConfig::parse("s3://bucket/a/b/", s3_defaults()).unwrap() {
        BlobConfig::S3(s3) => {
            assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("bucket", "a/b"))
        }
        other => panic!("{other:?}"),
    }
    assert!(BlobConfig::parse("gs://x", s3_defaults()).is_err());
    assert!(BlobConfig::parse("s3://", s3_defaults()).is_err());
    let s3 = S3Config {
        secret_access_key: Some(SecretString::from("hunter2")),
        ..s3_defaults()
    };
    assert!(
        !format!("{s3:?}").contains("hunter2"),
        "Debug hides the secret"
    );
}
