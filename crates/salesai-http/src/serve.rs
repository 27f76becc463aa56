//! Serving the router with the limits a public server needs: a client must finish sending its
//! request headers within [`Limits::header_read`], a request body that stops flowing for
//! [`Limits::body_idle`] ends the request, and at most [`Limits::max_connections`] connections are
//! served at once (further clients wait in the listen backlog until one closes). `axum::serve`
//! has none of these: a client that sends a header line every few seconds, or a body at ten bytes
//! a second, held its connection for as long as it liked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest time from a connection's first byte (or the end of its previous request) to the
    /// end of a request's headers.
    pub header_read: Duration,
    /// Longest pause in a request body.
    pub body_idle: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(15),
            body_idle: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (up to the grace period). Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_idle,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(event = "http.accept_failed", error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        );
        let connection = builder.serve_connection(
            TokioIo::new(ExplainedParseErrors::new(stream)),
            TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A closed or timed-out connection is routine; the permit frees its slot.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(event = "http.shutdown_timeout", "requests still running at the end of the grace period");
        }
    }
    Ok(())
}

/// A connection whose HTTP parse errors are explained. A request hyper cannot parse (a URL
/// over 64 KB, headers over its buffer, a malformed request line) is answered by hyper itself,
/// before any of salesai's code runs, with a bare `414`/`431`/`400` and no body. This wrapper
/// recognises exactly that head as it is written and sends salesai's JSON error instead (the
/// API's one error shape, with what to do), then the connection closes as hyper intended.
/// Everything else passes through untouched.
struct ExplainedParseErrors<S> {
    inner: S,
    /// The replacement still to be written, and how much of it has been.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> ExplainedParseErrors<S> {
    fn new(inner: S) -> Self {
        ExplainedParseErrors {
            inner,
            pending: None,
        }
    }
}

/// salesai's answer in place of hyper's bare head `head`, when `head` is one.
fn explained(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let end = text.find("\r\n\r\n")?;
    // The whole of what hyper writes for a parse error: a status line, connection: close,
    // content-length: 0 and a date, and nothing after the head.
    if end + 4 != text.len() {
        return None;
    }
    let mut lines = text[..end].split("\r\n");
    let status = lines.next()?;
    let rest: Vec<&str> = lines.collect();
    if !rest.iter().all(|l| {
        l.eq_ignore_ascii_case("content-length: 0")
            || l.eq_ignore_ascii_case("connection: close")
            || l.to_ascii_lowercase().starts_with("date: ")
    }) || !rest
        .iter()
        .any(|l| l.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let message = match status {
        "HTTP/1.1 414 URI Too Long" => {
            "the request's URL is longer than 64 KB; shorten it (a page cursor is a few dozen characters: pass the next_after you were given)"
        }
        "HTTP/1.1 431 Request Header Fields Too Large" => {
            "the request's headers are too large; send fewer or shorter headers (cookies included)"
        }
        "HTTP/1.1 400 Bad Request" => "the request is not valid HTTP/1.1",
        _ => return None,
    };
    let body = crate::error::error_body("INVALID_INPUT", message).to_string();
    Some(
        format!(
            "{status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: tokio::io::AsyncWrite + Unpin> ExplainedParseErrors<S> {
    /// Writes what is left of a replacement; ready once it is all written.
    fn drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            match std::pin::Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ExplainedParseErrors<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ExplainedParseErrors<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if let Some(replacement) = explained(buf) {
            self.pending = Some((replacement, 0));
            std::task::ready!(self.drain(cx))?;
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        let non_empty: Vec<&std::io::IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).collect();
        if let [only] = non_empty.as_slice()
            && let Some(replacement) = explained(only)
        {
            self.pending = Some((replacement, 0));
            std::task::ready!(self.drain(cx))?;
            return std::task::Poll::Ready(Ok(only.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_hypers_bare_parse_error_heads_are_explained() {
        // What hyper 1.x writes.
        let head = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(super::explained(head).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        assert!(out.contains("\"code\":\"INVALID_INPUT\"") && out.contains("connection: close"));
        let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
        assert!(out.contains(&format!("content-length: {}", body.len())));
        // A response of salesai's own (a body follows, or other headers) is left alone.
        assert!(
            super::explained(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\nx").is_none()
        );
        assert!(
            super::explained(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 0\r\n\r\n"
            )
            .is_none()
        );
        assert!(super::explained(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            super::explained(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n"
            )
            .is_some()
        );
    }
}
