//! Connection-level limits of the HTTP server loop, with raw sockets against a real server:
//! half-open connections (slowloris) are closed after the head timeout while normal
//! requests are served, idle keep-alive connections are closed, oversized heads get 431,
//! past the connection cap a client gets a clean 503, and SIGTERM drains.

use crate::common;

use std::time::{Duration, Instant};

use common::process::{Proc, pricehub};
use common::{Backend, TestApp, fresh_db};
use pricehub::config::{ConnArgs, HttpArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn http_with(conn: ConnArgs) -> HttpArgs {
    HttpArgs {
        conn,
        ..HttpArgs::default()
    }
}

/// Reads until the server closes the connection (EOF or reset), or `limit` passes.
/// Returns what was read and whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One complete HTTP/1.1 request on a raw socket; returns the response head + body.
async fn raw_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_after_the_head_timeout_while_requests_are_served() {
    const HALF_OPEN: usize = 2_000;
    const SILENT: usize = 100;
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let app = TestApp::start_with(
        db,
        http_with(ConnArgs {
            http_header_timeout: 2,
            ..ConnArgs::default()
        }),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();

    let opened = Instant::now();
    let mut attackers = Vec::with_capacity(HALF_OPEN + SILENT);
    for i in 0..HALF_OPEN + SILENT {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        if i < HALF_OPEN {
            // Half a request line, never finished.
            s.write_all(b"GET /rates?date_fr").await.unwrap();
        }
        attackers.push(s);
    }
    let m = app.get("/metrics").await.text().await.unwrap();
    let open = metric(&m, "pricehub_http_connections{server=\"api\"}").unwrap();
    assert!(
        open >= (HALF_OPEN + SILENT) as f64 * 0.9,
        "gauge says {open} open"
    );

    // Normal requests are served throughout, each on a fresh connection.
    let served = tokio::spawn({
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = app.url("/livez");
        async move {
            let mut ok = 0;
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let r = client
                    .get(&url)
                    .send()
                    .await
                    .expect("a normal request is answered");
                assert_eq!(r.status(), 200);
                ok += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok
        }
    });

    let reads = attackers.into_iter().map(|mut s| {
        tokio::spawn(async move { read_until_closed(&mut s, Duration::from_secs(20)).await })
    });
    let mut closed = 0;
    let mut answered_half_open = 0;
    for r in reads {
        let (got, was_closed) = r.await.unwrap();
        if was_closed {
            closed += 1;
        }
        if !got.is_empty() {
            answered_half_open += 1;
        }
    }
    let took = opened.elapsed();
    assert_eq!(
        closed,
        HALF_OPEN + SILENT,
        "half-open and silent connections still open after {took:?}"
    );
    // Closed, not answered: there is no request to answer.
    assert_eq!(answered_half_open, 0);
    assert!(
        took >= Duration::from_secs(2),
        "closed before the timeout: {took:?}"
    );
    let ok = served.await.unwrap();
    assert!(ok >= 10, "only {ok} normal requests served");

    let m = app.get("/metrics").await.text().await.unwrap();
    let open = metric(&m, "pricehub_http_connections{server=\"api\"}").unwrap();
    assert!(open <= 10.0, "gauge still says {open} open");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let app = TestApp::start_with(
        db,
        http_with(ConnArgs {
            http_header_timeout: 5,
            http_idle_timeout: 1,
            ..ConnArgs::default()
        }),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    // Three requests on one keep-alive connection, each well within the idle timeout.
    for _ in 0..3 {
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Then idle: closed after about a second, well before the head timeout.
    let started = Instant::now();
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "idle connection still open");
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(4));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_gets_431() {
    let db = fresh_db(Backend::Sqlite).await.unwrap();
    let app = TestApp::start_with(
        db,
        http_with(ConnArgs {
            http_max_header_bytes: 8 * 1024,
            ..ConnArgs::default()
        }),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let big = "a".repeat(16 * 1024);
    let _ = s
        .write_all(format!("GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:.200}");
    assert!(closed);
    // A normal head still passes.
    let ok = raw_get(&addr, "/livez").await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:.200}");
    // Responses keep their Content-Length through the server loop (no chunking).
    assert!(
        ok.to_ascii_lowercase().contains("content-length: "),
        "{ok:.200}"
    );
    app.stop().await;
}

/// The real binary, capped at 50 connections, under 1,000 connection attempts that each
/// hold their socket: every extra client gets a 503 problem (or, past the refusals in
/// progress, a clean close), nothing exhausts descriptors, and the process keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_clients_get_a_clean_503_and_the_process_keeps_running() {
    const CAP: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut p = Proc::spawn(pricehub().args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db,
        "--http-max-connections",
        "50",
        "--http-header-timeout",
        "30",
    ]));
    let addr = p.addr();
    // Fill the cap with connections that hold their slot (silent, within the timeout).
    let mut holders = Vec::new();
    for _ in 0..CAP {
        holders.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut refused_503 = 0;
    let mut closed_plain = 0;
    let mut tasks = Vec::new();
    for _ in 0..1_000 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            // A failed connect or write counts as a clean close.
            raw_get(&addr, "/livez").await.unwrap_or_default()
        }));
    }
    for t in tasks {
        let text = t.await.unwrap();
        if text.starts_with("HTTP/1.1 503") {
            assert!(text.contains("application/problem+json"), "{text}");
            assert!(text.contains("too-many-connections"), "{text}");
            assert!(
                text.to_ascii_lowercase().contains("retry-after: 1"),
                "{text}"
            );
            refused_503 += 1;
        } else {
            assert!(
                text.is_empty(),
                "past the cap, neither a 503 nor a clean close: {text:.200}"
            );
            closed_plain += 1;
        }
    }
    assert!(
        refused_503 > 0,
        "no 503 at all ({closed_plain} plain closes)"
    );
    assert!(p.child.try_wait().unwrap().is_none(), "the process died");

    // Room again: served normally, and the refusals were counted.
    drop(holders);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ok = raw_get(&addr, "/livez").await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:.300}");
    let m = raw_get(&addr, "/metrics").await.unwrap();
    let refused = metric(
        &m,
        "pricehub_http_connections_refused_total{server=\"api\"}",
    )
    .unwrap();
    assert!(
        refused as usize >= refused_503,
        "{refused} counted, {refused_503} seen"
    );
    assert!(p.terminate().success());
}

/// SIGTERM with `--drain-delay 2`: `/readyz` answers 503 `draining` at once, other routes
/// and new connections are still served during the delay, then the listener closes and
/// the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_readyz_first_then_stops_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut p = Proc::spawn(
        pricehub()
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .env("PRICEHUB_DRAIN_DELAY", "2"),
    );
    let addr = p.addr();
    let ready = raw_get(&addr, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready:.300}");

    let signalled = Instant::now();
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = raw_get(&addr, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready:.300}");
    let body = ready.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
    assert_eq!(v["status"], "draining");
    let live = raw_get(&addr, "/livez").await.unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live:.300}");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "too slow to check the drain"
    );

    // After the delay the listener closes and the process exits cleanly.
    let status = tokio::task::spawn_blocking(move || {
        let s = p.terminate();
        (s, p)
    });
    let (status, _p) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited before the drain delay: {:?}",
        signalled.elapsed()
    );
    assert!(TcpStream::connect(&addr).await.is_err(), "still accepting");
}
