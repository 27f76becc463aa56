//! `GET /calls/{id}/audio`: the recording streamed from blob storage, with HTTP Range.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use salesai_core::App;
use salesai_core::blob::BlobKey;
use salesai_core::domain::UploadKind;

use super::super::session::{PageError, Viewer};

use super::*;

/// What a `Range` header asks of a resource of `size` bytes (RFC 9110 §14.2).
#[derive(Debug, PartialEq)]
enum RangeAsk {
    /// The whole resource (200): no range salesai serves — another unit (`items=0-5`), several
    /// ranges (`bytes=0-1,5-6`; a server may answer those with the whole), or one it cannot
    /// read. RFC 9110 says to ignore these, not to refuse them.
    Whole,
    /// One satisfiable byte range (206).
    Part(std::ops::Range<u64>),
    /// One well-formed byte range that starts past the end (416).
    Unsatisfiable,
}

/// Reads a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`.
fn parse_range(header: &str, size: u64) -> RangeAsk {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return RangeAsk::Whole,
        ("", n) => match number(n) {
            Some(0) => return RangeAsk::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size),
            None => return RangeAsk::Whole,
        },
        (a, "") => match number(a) {
            Some(a) => (a, size),
            None => return RangeAsk::Whole,
        },
        (a, b) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => (a, b.saturating_add(1).min(size)),
            _ => return RangeAsk::Whole,
        },
    };
    if start < end && start < size {
        RangeAsk::Part(start..end)
    } else {
        RangeAsk::Unsatisfiable
    }
}

/// `GET /calls/{id}/audio`: the recording, streamed from blob storage with HTTP Range support.
pub async fn audio(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    let key = c
        .blob_key
        .as_deref()
        .filter(|_| c.media.kind == Some(UploadKind::Audio))
        .and_then(|k| BlobKey::parse(k).ok())
        .ok_or_else(|| PageError::not_found(lang))?;
    let unavailable = |e: salesai_core::blob::BlobError| {
        tracing::warn!(event = "web.audio_unavailable", conversation_id = %c.id, error = %e, "recording could not be read");
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(lang),
            lang.t().recording_cannot_be_read_from_storage,
        )
    };
    let size = app
        .blobs
        .size(&key)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| PageError::not_found(lang))?;
    let kind = match c.media.format.as_deref() {
        Some("mp3") => "audio/mpeg",
        Some("m4a") | Some("mp4") => "audio/mp4",
        Some("wav") => "audio/wav",
        Some("ogg") | Some("opus") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("webm") => "audio/webm",
        _ => "application/octet-stream",
    };
    let requested = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAsk::Whole, |raw| parse_range(raw, size));
    let mut response = match requested {
        RangeAsk::Part(range) => {
            let stream = app
                .blobs
                .get_range(&key, range.clone())
                .await
                .map_err(unavailable)?;
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
                    .expect("digits"),
            );
            r.headers_mut().insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            r
        }
        RangeAsk::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"),
            );
            return Ok(r);
        }
        RangeAsk::Whole => {
            let stream = app.blobs.get_stream(&key).await.map_err(unavailable)?;
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            r
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_browsers_send_them() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-", 100), Part(0..100));
        assert_eq!(parse_range("bytes=10-19", 100), Part(10..20));
        assert_eq!(parse_range("bytes=90-500", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("Bytes=-500", 100), Part(0..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        // Ignored (RFC 9110 §14.2): the whole file, 200.
        assert_eq!(parse_range("bytes=5-2", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
        assert_eq!(parse_range("bytes", 100), Whole);
    }
}
