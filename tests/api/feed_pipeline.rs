//! The live feed end to end with real sockets and a real PostgreSQL: provider →
//! collector → database, original-format servers that split frames anywhere and close
//! mid-frame, garbage on the wire, a provider restart, a database outage, SIGTERM, and
//! two clients of one broadcast market.
//!
//! No assertion is about time: tests wait for a state (with a generous cap that only
//! turns a hang into a failure) and then check exact counts.

use crate::common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use common::{Backend, TestDb, fresh_db};
use pricehub::config::{CollectorOptions, DbArgs, FeedMode, ProviderArgs};
use pricehub::db::Db;
use pricehub::feed::codec::{TradeCodec, encode_frame};
use pricehub::feed::collector::{self, CollectorStatus, RunningCollector};
use pricehub::feed::market::LegacyMarket;
use pricehub::feed::provider::{self, RunningProvider};
use pricehub::feed::{Trade, store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// Only a guard against hangs: every wait ends as soon as its condition holds.
const CAP: Duration = Duration::from_secs(180);

async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + CAP;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pg() -> Option<TestDb> {
    fresh_db(Backend::Postgres).await
}

fn db_name(t: &TestDb) -> String {
    t.url.expose().rsplit('/').next().unwrap().to_string()
}

async fn start_provider(args: ProviderArgs) -> (RunningProvider, CancellationToken) {
    let stop = CancellationToken::new();
    let p = provider::start(&args, Some("127.0.0.1:0".parse().unwrap()), stop.clone())
        .await
        .expect("start provider");
    (p, stop)
}

struct Collector {
    running: RunningCollector,
    status: Arc<CollectorStatus>,
    stop: CancellationToken,
    db: Db,
    dir: tempfile::TempDir,
}

impl Collector {
    async fn start(provider: &str, t: &TestDb, tweak: impl FnOnce(&mut CollectorOptions)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = CollectorOptions::new(provider, dir.path().to_path_buf());
        opts.flush_interval_ms = 50;
        tweak(&mut opts);
        let mut args = DbArgs::new(t.url.clone());
        args.db_acquire_timeout = 1;
        args.db_max_connections = 4;
        let db = Db::connect_lazy(&args).await.unwrap();
        let stop = CancellationToken::new();
        let running = collector::start(
            opts,
            db.clone(),
            Some("127.0.0.1:0".parse().unwrap()),
            stop.clone(),
        )
        .await
        .expect("start collector");
        let status = running.status.clone();
        Collector {
            running,
            status,
            stop,
            db,
            dir,
        }
    }

    fn stored(&self) -> u64 {
        self.status.stored.load(Ordering::Relaxed)
    }

    fn received(&self) -> u64 {
        self.status.received.load(Ordering::Relaxed)
    }

    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.running.wait().await.expect("collector stops cleanly");
        self.db.close().await;
        self.dir
    }
}

async fn pg_pool(t: &TestDb) -> sqlx::PgPool {
    match &t.db {
        Db::Postgres(p) => p.clone(),
        Db::Sqlite(_) => unreachable!(),
    }
}

/// (distinct receipt keys, rows, sum of instrument ticks)
async fn integrity(t: &TestDb) -> (i64, i64, i64) {
    let pool = pg_pool(t).await;
    sqlx::query_as(
        "SELECT (SELECT COUNT(DISTINCT (run_id, seq)) FROM trades), (SELECT COUNT(*) FROM trades), \
         (SELECT COALESCE(SUM(ticks), 0)::bigint FROM instruments)",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
}

async fn stored_trades(t: &TestDb) -> Vec<Trade> {
    let pool = pg_pool(t).await;
    let rows: Vec<(String, i64, f64, i64)> =
        sqlx::query_as("SELECT symbol, ts_ms, price, size FROM trades ORDER BY run_id, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(ticker, ts, price, size)| Trade {
            timestamp_ms: ts as u64,
            ticker,
            price,
            size: size as u32,
        })
        .collect()
}

fn broadcast_args(trades_per_second: f64, max_trades: u64, clients: usize) -> ProviderArgs {
    ProviderArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        trades_per_second,
        seed: Some(7),
        max_trades: Some(max_trades),
        wait_for_clients: clients,
        ..ProviderArgs::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_to_postgres_counts_match_exactly() {
    let Some(t) = pg().await else { return };
    const N: u64 = 50_000;
    let (p, p_stop) = start_provider(broadcast_args(25_000.0, N, 1)).await;
    let c = Collector::start(&p.addr.to_string(), &t, |o| o.batch_size = 5_000).await;
    wait_for("all trades stored", || async { c.stored() >= N }).await;
    assert_eq!(p.stats.generated.load(Ordering::Relaxed), N);
    assert_eq!(c.received(), N);
    assert_eq!(c.stored(), N);
    assert_eq!(c.status.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(integrity(&t).await, (N as i64, N as i64, N as i64));
    // The collector's latest prices are the stored ones.
    let instruments = store::list_instruments(&t.db).await.unwrap();
    for i in &instruments {
        assert_eq!(c.running.latest.get(&i.symbol).unwrap().price, i.last_price);
    }
    c.stop().await;
    p_stop.cancel();
    p.wait().await.unwrap();
}

/// One scripted connection of an original-format server.
struct Script {
    bytes: Vec<u8>,
    /// Valid trades in `bytes` that a correct collector must store.
    trades: Vec<Trade>,
}

/// Writes `bytes` in random pieces (1 byte to 3 frames), so reads see partial frames
/// and many frames at once; errors (the peer hung up on garbage) end it quietly.
async fn write_split(socket: &mut TcpStream, bytes: &[u8], rng: &mut SmallRng) {
    let mut at = 0;
    while at < bytes.len() {
        let n = rng.random_range(1..=90).min(bytes.len() - at);
        if socket.write_all(&bytes[at..at + n]).await.is_err() {
            return;
        }
        at += n;
        if rng.random_range(0..8) == 0 {
            tokio::task::yield_now().await;
        }
    }
    let _ = socket.flush().await;
}

fn bad_frame(ticker: &[u8], price: f64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((22 + ticker.len()) as u16).to_be_bytes());
    v.extend_from_slice(&1_795_412_588_265u64.to_be_bytes());
    v.extend_from_slice(&(ticker.len() as u16).to_be_bytes());
    v.extend_from_slice(ticker);
    v.extend_from_slice(&price.to_be_bytes());
    v.extend_from_slice(&100u32.to_be_bytes());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_frames_split_anywhere_over_several_connections() {
    let Some(t) = pg().await else { return };
    // The original's stream, each trade with its own timestamp.
    let mut market = LegacyMarket::new(3);
    let all: Vec<Trade> = (0..3_000u64)
        .map(|i| market.next_trade(1_795_412_588_265 + i))
        .collect();
    let frames = |r: std::ops::Range<usize>| -> Vec<u8> {
        all[r]
            .iter()
            .flat_map(|t| encode_frame(t).unwrap())
            .collect()
    };
    let mut scripts = Vec::new();
    // A: 1,000 trades, then the first 10 bytes of one more, and the connection closes.
    let mut a = frames(0..1_000);
    let half = encode_frame(&all[1_000]).unwrap();
    a.extend_from_slice(&half[..10]);
    scripts.push(Script {
        bytes: a,
        trades: all[..1_000].to_vec(),
    });
    // B: 1,000 trades with bad but well-delimited frames among them (skipped).
    let mut b = Vec::new();
    for (i, t) in all[1_000..2_000].iter().enumerate() {
        match i {
            100 => b.extend(bad_frame(b"AA\xffL", 100.0)),
            200 => b.extend(bad_frame(b"MSFT", f64::NAN)),
            300 => b.extend(bad_frame(b"GOOG", -5.0)),
            400 => b.extend(bad_frame(b"A\0PL", 100.0)),
            _ => {}
        }
        b.extend(encode_frame(t).unwrap());
    }
    scripts.push(Script {
        bytes: b,
        trades: all[1_000..2_000].to_vec(),
    });
    // C: 500 trades, then garbage: the collector must reset; frames after the garbage
    // are never trades.
    let mut c = frames(2_000..2_500);
    c.extend_from_slice(b"GET / HTTP/1.1\r\nHost: provider\r\n\r\n");
    c.extend(frames(2_500..2_600));
    scripts.push(Script {
        bytes: c,
        trades: all[2_000..2_500].to_vec(),
    });
    // D: the rest, then a clean close.
    scripts.push(Script {
        bytes: frames(2_500..3_000),
        trades: all[2_500..3_000].to_vec(),
    });
    let expected: Vec<Trade> = scripts.iter().flat_map(|s| s.trades.clone()).collect();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut rng = SmallRng::seed_from_u64(11);
        for s in scripts {
            let (mut socket, _) = listener.accept().await.unwrap();
            write_split(&mut socket, &s.bytes, &mut rng).await;
            // Wait for the collector to hang up (garbage) or hang up ourselves.
            drop(socket);
        }
        // Kept (not accepting) so no other test's provider can take this port while the
        // collector keeps reconnecting to it.
        listener
    });
    let col = Collector::start(&addr.to_string(), &t, |o| o.batch_size = 700).await;
    wait_for("every complete trade stored", || async {
        col.stored() >= expected.len() as u64
    })
    .await;
    let listener = server.await.unwrap();
    assert_eq!(col.stored(), expected.len() as u64);
    let stored = stored_trades(&t).await;
    assert_eq!(stored.len(), expected.len());
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!(got, want);
        assert_eq!(got.price.to_bits(), want.price.to_bits());
    }
    // Four skipped frames, one truncated at EOF, one garbage prefix.
    assert_eq!(col.status.rejected.load(Ordering::Relaxed), 6);
    assert!(col.status.connections.load(Ordering::Relaxed) >= 4);
    let metrics = pricehub::telemetry::metrics_handle().render();
    for reason in [
        "ticker_not_ascii",
        "price_not_finite",
        "price_not_positive",
        "truncated",
        "too_long",
    ] {
        assert!(
            metrics.contains(&format!(
                "pricehub_feed_trades_rejected_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted"
        );
    }
    col.stop().await;
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_reconnects_after_a_provider_restart() {
    let Some(t) = pg().await else { return };
    let (p, p_stop) = start_provider(broadcast_args(5_000.0, 2_000, 1)).await;
    let addr = p.addr;
    let c = Collector::start(&addr.to_string(), &t, |_| {}).await;
    wait_for("the first provider's trades", || async {
        c.stored() >= 2_000
    })
    .await;
    p_stop.cancel();
    p.wait().await.unwrap();
    wait_for("the collector to notice", || async {
        !c.status.connected.load(Ordering::Relaxed)
    })
    .await;
    // Same address, a new process's worth of state.
    let (p2, p2_stop) = start_provider(ProviderArgs {
        listen: addr,
        ..broadcast_args(5_000.0, 3_000, 1)
    })
    .await;
    wait_for("the second provider's trades", || async {
        c.stored() >= 5_000
    })
    .await;
    assert_eq!(c.stored(), 5_000);
    assert!(c.status.connections.load(Ordering::Relaxed) >= 2);
    assert_eq!(integrity(&t).await, (5_000, 5_000, 5_000));
    c.stop().await;
    p2_stop.cancel();
    p2.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_loses_and_duplicates_nothing() {
    let Some(t) = pg().await else { return };
    let name = db_name(&t);
    const N: u64 = 20_000;
    let (p, p_stop) = start_provider(broadcast_args(4_000.0, N, 1)).await;
    // A small memory bound so the outage goes through the spool too.
    let c = Collector::start(&p.addr.to_string(), &t, |o| {
        o.batch_size = 500;
        o.max_buffered = 1_000;
        o.spool_segment_bytes = 16 << 10;
    })
    .await;
    let http = format!("http://{}", c.running.http_addr.unwrap());
    wait_for("some trades stored", || async { c.stored() >= 2_000 }).await;
    common::pg::admin_execute(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await
    .unwrap();
    wait_for("trades spooled during the outage", || async {
        c.status.spool_bytes.load(Ordering::Relaxed) > 64 << 10 && c.received() >= 8_000
    })
    .await;
    let client = reqwest::Client::new();
    let resp = client.get(format!("{http}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["status"], "down", "{body}");
    assert_eq!(body["checks"]["provider"]["status"], "up", "{body}");
    let stored_during = c.stored();
    assert!(stored_during < c.received());

    common::pg::admin_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .unwrap();
    wait_for("everything stored after the outage", || async {
        c.stored() >= N && c.status.spool_bytes.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(c.received(), N);
    assert_eq!(c.stored(), N);
    let (distinct, rows, ticks) = integrity(&t).await;
    assert_eq!((distinct, rows, ticks), (N as i64, N as i64, N as i64));
    let pool = pg_pool(&t).await;
    let (min, max): (i64, i64) = sqlx::query_as("SELECT MIN(seq), MAX(seq) FROM trades")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((min, max), (0, N as i64 - 1), "every receipt, in one run");
    let resp = client.get(format!("{http}/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let dir = c.stop().await;
    let left = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
    assert_eq!(left, 0, "replayed spool segments are deleted");
    p_stop.cancel();
    p.wait().await.unwrap();
}

/// A crash mid-flush leaves a spool segment whose trades are partly stored: the next
/// run replays it, and the receipt key keeps every trade exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_spool_after_a_crash_stores_each_trade_once() {
    let Some(t) = pg().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let receipts: Vec<store::Receipt> = (0..3_000)
        .map(|seq| store::Receipt {
            run_id: 99,
            seq,
            received_ms: 1,
            trade: Trade {
                timestamp_ms: 1_795_412_588_265 + seq as u64,
                ticker: "SPY".into(),
                price: 500.0,
                size: 100,
            },
        })
        .collect();
    {
        let label = pricehub::feed::spool::address_label(&t.db);
        let mut spool =
            pricehub::feed::spool::Spool::open(&dir.path().join("spool"), 1 << 20, label).unwrap();
        spool.append(&receipts).unwrap();
        // No rotate: the process died.
    }
    // The first 1,200 made it to the database before the crash.
    store::insert_batch(&t.db, &receipts[..1_200])
        .await
        .unwrap();
    // A provider that never sends (kept bound, so that no other test's provider can get
    // this port while the collector keeps reconnecting to it); the collector only replays.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let mut args = DbArgs::new(t.url.clone());
    args.db_acquire_timeout = 1;
    let db = Db::connect_lazy(&args).await.unwrap();
    let stop = CancellationToken::new();
    let mut opts = CollectorOptions::new(addr.to_string(), dir.path().to_path_buf());
    opts.batch_size = 1_000;
    let running = collector::start(opts, db.clone(), None, stop.clone())
        .await
        .unwrap();
    wait_for("the spool replayed", || async {
        running.status.spool_bytes.load(Ordering::Relaxed) == 0
    })
    .await;
    assert_eq!(running.status.stored.load(Ordering::Relaxed), 1_800);
    assert_eq!(integrity(&t).await, (3_000, 3_000, 3_000));
    stop.cancel();
    running.wait().await.unwrap();
    db.close().await;
    drop(silent);
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn metric(client: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_makes_the_collector_process_flush_before_exit() {
    let Some(t) = pg().await else { return };
    const N: u64 = 3_000;
    let (p, p_stop) = start_provider(broadcast_args(10_000.0, N, 1)).await;
    let http = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pricehub"))
        .args(["collector", "--provider", &p.addr.to_string()])
        .args(["--database-url", t.url.expose()])
        .args(["--http-listen", &http.to_string()])
        // Nothing is due before SIGTERM: a huge batch and a long interval.
        .args(["--batch-size", "1000000", "--flush-interval-ms", "3600000"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log-format", "json"])
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pricehub collector");
    let client = reqwest::Client::new();
    let url = format!("http://{http}/metrics");
    let deadline = tokio::time::Instant::now() + CAP;
    loop {
        let got = metric(&client, &url, "pricehub_feed_trades_received_total").await;
        if got == Some(N as f64) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the collector exited early: {status:?}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for the collector to receive every trade (last seen: {got:?}; provider: {:?})",
            p.stats
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store::count_trades(&t.db).await.unwrap(),
        0,
        "nothing flushed yet"
    );
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(store::count_trades(&t.db).await.unwrap(), N as i64);
    assert_eq!(integrity(&t).await, (N as i64, N as i64, N as i64));
    p_stop.cancel();
    p.wait().await.unwrap();
}

/// Reads raw bytes until `n` frames have arrived, then decodes them.
async fn read_trades(mut socket: TcpStream, n: usize) -> Vec<Trade> {
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        if socket.read_buf(&mut buf).await.unwrap() == 0 {
            break;
        }
        while let Some(t) = TradeCodec.decode(&mut buf).unwrap() {
            out.push(t);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_clients_see_the_same_market() {
    const N: u64 = 300_000;
    // A buffer far larger than the run, so a busy test machine cannot make a reader lag.
    let (p, p_stop) = start_provider(ProviderArgs {
        client_buffer: 1_000_000,
        ..broadcast_args(100_000.0, N, 2)
    })
    .await;
    let a = TcpStream::connect(p.addr).await.unwrap();
    let b = TcpStream::connect(p.addr).await.unwrap();
    let (ta, tb) = tokio::join!(
        tokio::spawn(read_trades(a, N as usize)),
        tokio::spawn(read_trades(b, N as usize))
    );
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.len(), N as usize, "the first client got every trade");
    assert_eq!(ta, tb, "both clients saw the same market");
    assert_eq!(p.stats.dropped_slow.load(Ordering::Relaxed), 0);
    p_stop.cancel();
    p.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off() {
    // The market runs until the stalled client has filled the kernel's socket buffers
    // (a few MB) and then the provider's 1,000-frame buffer.
    let (p, p_stop) = start_provider(ProviderArgs {
        client_buffer: 1_000,
        ..broadcast_args(50_000.0, 50_000_000, 1)
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stalled = socket.connect(p.addr).await.unwrap();
    wait_for("the stalled client to be cut off", || async {
        p.stats.dropped_slow.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(p.stats.dropped_slow.load(Ordering::Relaxed), 1);
    let metrics = pricehub::telemetry::metrics_handle().render();
    assert!(metrics.contains("pricehub_provider_clients_dropped_total{reason=\"lagged\"}"));
    drop(stalled);
    p_stop.cancel();
    p.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_mode_serves_independent_original_streams() {
    let (p, p_stop) = start_provider(ProviderArgs {
        mode: FeedMode::Legacy,
        max_trades: Some(3),
        ..broadcast_args(1.0, 3, 0)
    })
    .await;
    let a = TcpStream::connect(p.addr).await.unwrap();
    let b = TcpStream::connect(p.addr).await.unwrap();
    let (ta, tb) = tokio::join!(read_trades(a, 3), read_trades(b, 3));
    assert_eq!((ta.len(), tb.len()), (3, 3));
    for t in ta.iter().chain(&tb) {
        assert!(LegacyMarket::TICKERS.contains(&t.ticker.as_str()), "{t:?}");
        let k = ((t.price - 90.0) / 0.05).round();
        assert_eq!(t.price.to_bits(), (90.0 + k * 0.05).to_bits());
        assert!(t.size % 100 == 0 && (100..=9_900).contains(&t.size));
    }
    assert_ne!(ta, tb, "each connection has its own stream");
    p_stop.cancel();
    p.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_side_port_serves_coindesk_prices_and_probes() {
    let (p, p_stop) = start_provider(broadcast_args(1_000.0, 1_000, 0)).await;
    let base = format!("http://{}", p.http_addr.unwrap());
    let client = reqwest::Client::new();
    let v: serde_json::Value = client
        .get(format!("{base}/v1/bpi/currentprice.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for code in ["USD", "EUR", "GBP"] {
        let e = &v["bpi"][code];
        assert_eq!(e["code"], code);
        assert!(e["rate_float"].as_f64().unwrap() > 1_000.0, "{v}");
        let rate = e["rate"].as_str().unwrap();
        assert!(rate.contains(',') && rate.split('.').nth(1).unwrap().len() == 4);
    }
    assert!(
        v["time"]["updatedISO"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    for path in ["/livez", "/readyz"] {
        assert_eq!(
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("pricehub_provider_trades_total"));
    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    p_stop.cancel();
    p.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_to_sqlite_counts_match_exactly() {
    let Some(t) = fresh_db(Backend::Sqlite).await else {
        return;
    };
    const N: u64 = 20_000;
    let (p, p_stop) = start_provider(broadcast_args(20_000.0, N, 1)).await;
    let c = Collector::start(&p.addr.to_string(), &t, |o| o.batch_size = 3_000).await;
    wait_for("all trades stored", || async { c.stored() >= N }).await;
    assert_eq!(c.stored(), N);
    assert_eq!(store::count_trades(&t.db).await.unwrap(), N as i64);
    let ticks: i64 = store::list_instruments(&t.db)
        .await
        .unwrap()
        .iter()
        .map(|i| i.ticks)
        .sum();
    assert_eq!(ticks, N as i64);
    c.stop().await;
    p_stop.cancel();
    p.wait().await.unwrap();
}

/// The embedded default: one command, and the API's instruments move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_shows_live_prices() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_addr();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pricehub"))
        .args(["all", "--listen", &api.to_string(), "--no-demo-data"])
        .args(["--feed-rate", "200"])
        .arg("--data-dir")
        .arg(dir.path())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn pricehub all");
    let client = reqwest::Client::new();
    let url = format!("http://{api}/instruments");
    let ticks = || async {
        let body: serde_json::Value = client.get(&url).send().await.ok()?.json().await.ok()?;
        let list = body["instruments"].as_array()?;
        Some(
            list.iter()
                .map(|i| i["ticks"].as_i64().unwrap_or(0))
                .sum::<i64>(),
        )
    };
    wait_for("stored trades on /instruments", || async {
        ticks().await.is_some_and(|n| n > 0)
    })
    .await;
    let first = ticks().await.unwrap();
    wait_for("the count to move", || async {
        ticks().await.is_some_and(|n| n > first)
    })
    .await;
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(child.wait().await.unwrap().success());
    let db = Db::connect(&DbArgs::new(pricehub::config::DatabaseUrl::sqlite_file(
        &dir.path().join("pricehub.db"),
    )))
    .await
    .unwrap();
    assert!(store::count_trades(&db).await.unwrap() > first);
    db.close().await;
}
