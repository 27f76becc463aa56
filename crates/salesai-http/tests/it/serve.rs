//! The server's own limits, against raw TCP clients that misbehave: headers that never end, a
//! body that stops, more connections than allowed. Each wait here is bounded by a generous
//! client-side timeout; nothing asserts how fast the server was.

use std::time::Duration;

use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_providers::blob::ObjectBlobStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use salesai_http::serve::Limits;

/// Serves the real router with tight limits; returns its address.
async fn start(db: &TestDb, limits: Limits) -> (std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = std::sync::Arc::new(ObjectBlobStore::folder(dir.path()).unwrap());
    let app = salesai_core::App::new(db.store(), blobs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(salesai_http::serve::serve(
        listener,
        salesai_http::router(app),
        limits,
        std::future::pending(),
    ));
    (addr, dir)
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

async fn get_health(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut s).await
}

fn tight() -> Limits {
    Limits {
        header_read: Duration::from_millis(300),
        body_idle: Duration::from_millis(300),
        max_connections: 2,
        shutdown_grace: Duration::from_secs(1),
    }
}

story!(slow_headers_and_stalled_bodies_are_cut_off);
async fn slow_headers_and_stalled_bodies_are_cut_off(db: &TestDb) {
    let (addr, _dir) = start(db, tight()).await;
    assert!(get_health(addr).await.starts_with("HTTP/1.1 200"));

    // Headers that never end: the connection is closed (408 or plain close).
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A body that stops halfway: the request ends with an error, not a held connection.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(
            b"POST /login/link/abc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=",
        )
        .await
        .unwrap();
    let answer = until_closed(&mut stalled).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // Two idle connections fill both slots; once their header deadline frees them, the
    // server answers again (slots are given back, never leaked).
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    assert!(get_health(addr).await.starts_with("HTTP/1.1 200"));
    for mut s in idle {
        until_closed(&mut s).await;
    }
    for _ in 0..3 {
        assert!(get_health(addr).await.starts_with("HTTP/1.1 200"));
    }
}
