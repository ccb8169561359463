//! `GET /instruments/stream` with real processes: the embedded default, and a provider
//! and collector in their own processes writing to PostgreSQL (LISTEN/NOTIFY) or SQLite
//! (poll) while `pricehub serve` streams; resume with Last-Event-ID; heartbeats; a slow
//! client dropped and counted while another keeps receiving.
//!
//! No assertion is about time: every wait ends as soon as its condition holds, under a
//! generous cap that only turns a hang into a failure.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::process::{Proc, pricehub, spawn_feed};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CAP: Duration = Duration::from_secs(120);

/// One parsed Server-Sent Event (or heartbeat comment).
#[derive(Debug, Default, Clone)]
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: Option<String>,
    retry: Option<String>,
}

impl Sse {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {self:?}"))
    }
    fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|i| i.rsplit_once('-'))
            .unwrap()
            .1
            .parse()
            .unwrap()
    }
    fn epoch(&self) -> String {
        self.id
            .as_deref()
            .and_then(|i| i.split_once('-'))
            .unwrap()
            .0
            .to_string()
    }
    fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }
}

/// An SSE connection read with reqwest.
struct Client {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Client {
    async fn connect(base: &str, last_event_id: Option<&str>) -> Client {
        let mut req = reqwest::Client::new().get(format!("{base}/instruments/stream"));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("stream request");
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Client {
            body: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event or comment.
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(CAP, self.next_inner())
            .await
            .expect("an event within the cap")
    }

    async fn next_inner(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = Sse::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        e.comment = Some(c.trim().to_string());
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v).to_string();
                        match k {
                            "id" => e.id = Some(v),
                            "event" => e.event = Some(v),
                            "data" => e.data.push_str(&v),
                            "retry" => e.retry = Some(v),
                            _ => panic!("unknown field {k}"),
                        }
                    }
                }
                return e;
            }
            let chunk = self
                .body
                .next()
                .await
                .expect("the stream stays open")
                .expect("stream body");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event, skipping heartbeats.
    async fn event(&mut self) -> Sse {
        loop {
            let e = self.next().await;
            if e.comment.is_none() {
                return e;
            }
        }
    }
}

/// Checks the shape of an update and returns it.
fn check_update(e: &Sse) -> serde_json::Value {
    assert_eq!(e.kind(), "update", "{e:?}");
    let v = e.json();
    assert!(
        v["published_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{v}"
    );
    let instruments = v["instruments"].as_array().unwrap();
    assert!(!instruments.is_empty(), "an update names what changed: {v}");
    for i in instruments {
        assert!(i["symbol"].as_str().is_some_and(|s| !s.is_empty()), "{i}");
        assert!(i["price"].as_f64().unwrap() > 0.0, "{i}");
        assert!(i["timestamp_ms"].as_i64().unwrap() > 0, "{i}");
        assert!(
            i["ticks"].as_i64().unwrap() >= i["trades"].as_i64().unwrap(),
            "{i}"
        );
        assert!(i["trades"].as_i64().unwrap() >= 0, "{i}");
    }
    v
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} is not exposed:\n{text}"))
}

async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + CAP;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the stream's start line (logged before the listening line) and the address;
/// returns the base URL and what triggers the stream's updates.
fn started(p: &mut Proc) -> (String, String) {
    let trigger = p.wait_for("instrument stream running")["trigger"]
        .as_str()
        .unwrap()
        .to_string();
    (format!("http://{}", p.addr()), trigger)
}

fn spawn_serve(db: &str, extra: &[&str]) -> (Proc, String, String) {
    let mut p = Proc::spawn(
        pricehub()
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
            .args(extra),
    );
    let (base, trigger) = started(&mut p);
    (p, base, trigger)
}

/// The newcomer's setup: everything in one process. Updates arrive, ids count up by one,
/// and a client that reconnects with Last-Event-ID gets exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_streams_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::spawn(
        pricehub()
            .args([
                "all",
                "--listen",
                "127.0.0.1:0",
                "--no-demo-data",
                "--feed-rate",
                "20",
                "--data-dir",
            ])
            .arg(dir.path()),
    );
    let (base, trigger) = started(&mut p);
    assert_eq!(trigger, "in-process collector");

    let mut a = Client::connect(&base, None).await;
    let first = a.event().await;
    assert_eq!(first.kind(), "snapshot", "{first:?}");
    assert_eq!(first.json()["reason"], "connect");
    assert!(
        first.retry.is_some(),
        "the snapshot tells EventSource when to retry"
    );
    let mut observer = Client::connect(&base, None).await;
    observer.event().await;

    let mut last = a.event().await;
    check_update(&last);
    for _ in 0..3 {
        let e = a.event().await;
        check_update(&e);
        assert_eq!(e.epoch(), last.epoch());
        assert_eq!(
            e.seq(),
            last.seq() + 1,
            "ids count up by one: {last:?} then {e:?}"
        );
        last = e;
    }
    let resume_at = last.id.clone().unwrap();
    drop(a);
    // Three more updates while `a` is away.
    let mut missed = Vec::new();
    while missed.len() < 3 {
        let e = observer.event().await;
        if e.seq() > last.seq() {
            missed.push(e);
        }
    }
    let mut a = Client::connect(&base, Some(&resume_at)).await;
    for want in &missed {
        let got = a.event().await;
        assert_eq!(
            got.kind(),
            "update",
            "a resume replays updates, no snapshot: {got:?}"
        );
        assert_eq!(got.id, want.id);
        assert_eq!(got.data, want.data, "the replay is the same event");
    }

    // An id from another process (or too old): a snapshot restores the state.
    let epoch = last.epoch();
    // Every digit differs, so it cannot be this process's epoch.
    let other: String = epoch
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let mut b = Client::connect(&base, Some(&format!("{other}-{}", last.seq()))).await;
    let e = b.event().await;
    assert_eq!(e.kind(), "snapshot");
    let snap = e.json();
    assert_eq!(snap["reason"], "resume-unavailable");
    assert!(
        snap["instruments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["symbol"] == "BTCUSD"),
        "{snap}"
    );

    // A malformed id is a clear 400, not a stream.
    let resp = reqwest::Client::new()
        .get(format!("{base}/instruments/stream"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "urn:pricehub:problem:invalid-last-event-id");

    assert!(metric(&base, "pricehub_stream_events_total").await >= 7.0);
    assert_eq!(
        metric(&base, "pricehub_stream_clients_dropped_total").await,
        0.0
    );
    drop((a, b, observer));
    wait_until("the clients gauge to come back to 0", || async {
        metric(&base, "pricehub_stream_clients").await == 0.0
    })
    .await;
    assert!(
        p.terminate().success(),
        "streams do not hold the shutdown up"
    );
}

/// The collector in its own process writes to the database; `serve` streams what it
/// commits: PostgreSQL through LISTEN/NOTIFY (no poll there, so an update proves the
/// notification), SQLite through a short poll.
async fn separate_collector(db: &str, trigger: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut serve, base, used) = spawn_serve(db, &[]);
    assert_eq!(used, trigger);
    let mut c = Client::connect(&base, None).await;
    let snap = c.event().await;
    assert_eq!(snap.kind(), "snapshot");
    assert_eq!(
        snap.json()["instruments"],
        serde_json::json!([]),
        "nothing stored yet"
    );

    let (_provider, _collector) = spawn_feed(
        db,
        dir.path(),
        &["--rate", "50"],
        &["--flush-interval-ms", "20"],
    );
    let mut ticks = std::collections::HashMap::new();
    let mut seen_trades = 0;
    while seen_trades < 20 {
        let e = c.event().await;
        let v = check_update(&e);
        for i in v["instruments"].as_array().unwrap() {
            let symbol = i["symbol"].as_str().unwrap().to_string();
            let (n, t) = (i["ticks"].as_i64().unwrap(), i["trades"].as_i64().unwrap());
            let before = ticks.insert(symbol, n).unwrap_or(0);
            assert_eq!(
                n - before,
                t,
                "trades is the count since the previous event: {i}"
            );
            seen_trades += t;
        }
    }
    // The stream agrees with the stored state.
    let stored: serde_json::Value = reqwest::get(format!("{base}/instruments"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for i in stored["instruments"].as_array().unwrap() {
        let streamed = ticks
            .get(i["symbol"].as_str().unwrap())
            .copied()
            .unwrap_or(0);
        assert!(i["ticks"].as_i64().unwrap() >= streamed, "{i}");
    }
    assert!(serve.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_collector_on_postgres_streams_through_notify() {
    let Some(url) = common::pg::fresh_database(false).await else {
        return;
    };
    separate_collector(url.expose(), "postgres LISTEN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_collector_on_sqlite_streams_through_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    // The collector creates the schema; serve must find it migrated too.
    let db = migrated_sqlite(dir.path());
    separate_collector(&db, "sqlite poll").await;
}

/// A SQLite database file in `dir` migrated by `pricehub migrate`; its URL.
fn migrated_sqlite(dir: &std::path::Path) -> String {
    let db = format!("sqlite://{}", dir.join("feed.db").display());
    let status = Command::new(env!("CARGO_BIN_EXE_pricehub"))
        .args(["migrate", "--database-url", &db])
        .env("PRICEHUB_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    db
}

/// An idle stream carries heartbeat comments; the stream metrics exist from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_heartbeats_and_metrics_start_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (mut p, base, _) = spawn_serve(&db, &["--stream-heartbeat", "1"]);
    assert_eq!(metric(&base, "pricehub_stream_clients").await, 0.0);
    assert_eq!(
        metric(&base, "pricehub_stream_clients_dropped_total").await,
        0.0
    );
    assert_eq!(metric(&base, "pricehub_stream_events_total").await, 0.0);
    let mut c = Client::connect(&base, None).await;
    assert_eq!(c.next().await.kind(), "snapshot");
    for _ in 0..2 {
        let e = c.next().await;
        assert_eq!(e.comment.as_deref(), Some("heartbeat"), "{e:?}");
        assert!(e.id.is_none() && e.data.is_empty());
    }
    assert_eq!(metric(&base, "pricehub_stream_clients").await, 1.0);
    assert!(p.terminate().success());
}

/// A client that stops reading fills its queue and is dropped and counted; a client
/// that reads keeps receiving, before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_and_counted_while_others_keep_receiving() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_sqlite(dir.path());
    let (mut serve, base, _) = spawn_serve(
        &db,
        &["--stream-client-buffer", "4", "--stream-poll-ms", "10"],
    );
    // Many instruments make big events, which fill the socket buffers sooner.
    let instruments: Vec<String> = (0..150)
        .map(|i| format!("INSTRUMENT{i:03}:100:0.01:1"))
        .collect();
    let (_provider, _collector) = spawn_feed(
        &db,
        dir.path(),
        &["--rate", "5000", "--instruments", &instruments.join(",")],
        &["--flush-interval-ms", "5", "--batch-size", "500"],
    );

    // The slow client: a tiny receive buffer, and it never reads.
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(format!("GET /instruments/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();

    let mut fast = Client::connect(&base, None).await;
    let mut received = 0u64;
    let deadline = tokio::time::Instant::now() + CAP;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never dropped"
        );
        let e = fast.event().await;
        if e.kind() == "update" {
            received += 1;
        }
        if received % 20 == 0 && metric(&base, "pricehub_stream_clients_dropped_total").await >= 1.0
        {
            break;
        }
    }
    // The reader is still served.
    let before = fast.event().await.seq();
    for _ in 0..20 {
        let e = fast.event().await;
        assert_eq!(e.kind(), "update");
        assert!(e.seq() > before);
    }
    assert_eq!(
        metric(&base, "pricehub_stream_clients_dropped_total").await,
        1.0,
        "only the slow client was dropped"
    );
    // Once the slow client reads, it gets what was queued and then the end of the stream.
    let mut tail = Vec::new();
    let mut chunk = [0u8; 65536];
    tokio::time::timeout(CAP, async {
        loop {
            let n = slow.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&chunk[..n]);
            if tail.ends_with(b"\r\n0\r\n\r\n") {
                break;
            }
        }
    })
    .await
    .expect("the dropped client's stream ends");
    assert!(
        tail.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&tail[..200.min(tail.len())])
    );
    drop(slow);
    drop(fast);
    wait_until("the clients gauge to come back to 0", || async {
        metric(&base, "pricehub_stream_clients").await == 0.0
    })
    .await;
    assert!(serve.terminate().success());
}
