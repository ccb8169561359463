//! `pricehub collector`: connects to a provider, decodes and validates the frames, and
//! stores every trade it receives.
//!
//! Two tasks joined by an unbounded channel of decoded chunks:
//!
//! * the **reader** owns the TCP connection: it reads whatever the socket has, decodes
//!   every complete frame with [`SkippingDecoder`] (bad but well-delimited frames are
//!   counted and skipped; a fatal error resets the connection), stamps each trade with
//!   its receipt key `(run_id, seq)`, updates [`LatestPrices`] and hands the chunk over.
//!   It never waits for the database, so a slow or absent database cannot make the
//!   provider cut us off. It reconnects with exponential backoff and full jitter.
//! * the **writer** owns everything received and not yet committed: a bounded in-memory
//!   queue, up to `--max-inflight` batches in flight, and the on-disk [`Spool`]. It flushes by size
//!   (`--batch-size`) or age (`--flush-interval-ms`). While the database is unreachable
//!   it keeps the queue up to `--max-buffered` trades and appends the rest to the spool;
//!   once the database is back it writes the queue, then replays the spool in order,
//!   deleting a segment only after every batch read from it committed. New trades go to
//!   the spool while it is being replayed, so batches are read in order of arrival.
//!
//! Nothing received is dropped: a failed batch is retried as is; a batch whose commit
//! outcome is unknown (connection lost during COMMIT) is retried too, and the receipt
//! key makes a second copy a no-op. On shutdown the reader stops, the writer flushes
//! everything for up to `--shutdown-timeout` seconds and spools (fsynced) what the
//! database did not take.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::BytesMut;
use parking_lot::Mutex;
use rand::Rng;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::codec::{FrameError, SkippingDecoder};
use super::spool::{self, Spool, SpoolLabel};
use super::store::{self, Receipt};
use super::{LatestPrices, now_ms};
use crate::config::CollectorOptions;
use crate::db::Db;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that lived this long resets the reconnect backoff.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(10);

/// Exponential backoff with full jitter (a random wait up to the current ceiling).
struct Backoff {
    ceiling: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            ceiling: BACKOFF_MIN,
        }
    }
    fn reset(&mut self) {
        self.ceiling = BACKOFF_MIN;
    }
    fn next(&mut self) -> Duration {
        let wait = rand::rng().random_range(BACKOFF_MIN / 2..=self.ceiling);
        self.ceiling = (self.ceiling * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Live state of a collector, for `/readyz`, tests and the embedded default.
#[derive(Debug, Default)]
pub struct CollectorStatus {
    pub connected: AtomicBool,
    /// The last write (or probe) of the database succeeded.
    pub db_ok: AtomicBool,
    pub db_error: Mutex<Option<String>>,
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub rejected: AtomicU64,
    /// Trades received and not yet committed (memory, in flight and spool).
    pub pending: AtomicU64,
    pub spool_bytes: AtomicU64,
    pub connections: AtomicU64,
    /// When the database last accepted a write, ms since the epoch (0: never).
    pub last_write_ms: AtomicU64,
}

/// A collector running in this process.
pub struct RunningCollector {
    pub http_addr: Option<SocketAddr>,
    pub latest: LatestPrices,
    pub status: Arc<CollectorStatus>,
    /// This run's receipt-key prefix.
    pub run_id: i64,
    /// Poked after every committed batch (the instrument stream of this process waits
    /// on it).
    pub committed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    http_task: Option<crate::http::side_port::SidePortTask>,
}

impl RunningCollector {
    /// Waits until the collector has stopped (after `shutdown`) and flushed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.task.await.context("collector task panicked")?;
        if let Some(h) = self.http_task {
            h.await.context("collector HTTP task panicked")??;
        }
        result
    }
}

/// Starts a collector writing to `db` (which may be unreachable at first: use a lazy
/// pool). `http_listen: None` skips the side port.
pub async fn start(
    opts: CollectorOptions,
    db: Db,
    http_listen: Option<SocketAddr>,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningCollector> {
    // Install the recorder before any task takes a metric handle: a handle taken
    // earlier stays bound to the no-op recorder.
    crate::telemetry::metrics_handle();
    super::metrics::register_collector();
    let spool = open_spool(&opts, &db)?;
    let run_id = rand::rng().random_range(1..i64::MAX);
    let latest = LatestPrices::new();
    let status = Arc::new(CollectorStatus::default());
    status.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
    metrics::gauge!("pricehub_feed_spool_bytes").set(spool.bytes() as f64);
    let (tx, rx) = mpsc::unbounded_channel();
    let committed = Arc::new(tokio::sync::Notify::new());
    // Stops the reader and the side port on shutdown, or when the writer fails (a spool
    // refused for another database), so that the collector exits with the error.
    let shutdown = shutdown.child_token();

    let reader = tokio::spawn(read_loop(
        opts.provider.clone(),
        run_id,
        tx,
        latest.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    let writer = TradeWriter::new(
        db.clone(),
        opts.clone(),
        status.clone(),
        spool,
        committed.clone(),
    );
    let task = spawn_writer(writer, rx, reader, shutdown.clone());

    let state = CollectorSideState {
        status: status.clone(),
        db,
        provider: opts.provider.clone(),
    };
    let (http_addr, http_task) = crate::http::side_port::serve_side_port_if(
        "collector",
        http_listen,
        &opts.conn,
        || side_routes(state),
        shutdown.clone(),
    )
    .await?;
    tracing::info!(provider = %opts.provider, ?http_addr, run_id, "collector started");
    Ok(RunningCollector {
        http_addr,
        latest,
        status,
        run_id,
        committed,
        task,
        http_task,
    })
}

/// Runs the writer to its end, then waits for the reader. A writer that fails (a spool
/// refused for another database) cancels `stop`, so that the collector exits with the
/// error.
fn spawn_writer(
    writer: TradeWriter,
    rx: mpsc::UnboundedReceiver<Vec<Receipt>>,
    reader: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let result = writer.run(rx).await;
        if let Err(e) = &result {
            tracing::error!(error = %format!("{e:#}"), "collector writer failed; stopping");
            stop.cancel();
        }
        let _ = reader.await;
        result
    })
}

/// Opens the spool in the data directory; it must have been written for this database
/// address (a spool from an earlier run is replayed first).
fn open_spool(opts: &CollectorOptions, db: &Db) -> anyhow::Result<Spool> {
    let spool_dir = opts.data_dir.join("spool");
    let spool = Spool::open(
        &spool_dir,
        opts.spool_segment_bytes,
        spool::address_label(db),
    )
    .with_context(|| format!("cannot open the spool in {}", spool_dir.display()))?;
    spool.check_address().map_err(anyhow::Error::msg)?;
    if spool.is_active() {
        tracing::warn!(dir = %spool_dir.display(), bytes = spool.bytes(), "spool from an earlier run found; it is replayed first");
    }
    Ok(spool)
}

/// The side port's own route: `/readyz`.
fn side_routes(state: CollectorSideState) -> Router {
    Router::new()
        .route("/readyz", axum::routing::get(readyz))
        .with_state(state)
}

/// Why a connection ended.
enum Ended {
    Stopped,
    Closed,
    Failed(String),
}

async fn read_loop(
    provider: String,
    run_id: i64,
    tx: mpsc::UnboundedSender<Vec<Receipt>>,
    latest: LatestPrices,
    status: Arc<CollectorStatus>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut seq: i64 = 0;
    let connected_gauge = metrics::gauge!("pricehub_feed_connected");
    loop {
        if stop.is_cancelled() {
            return;
        }
        let Some(stream) = connect(&provider, &stop).await else {
            if !sleep_or_stop(backoff.next(), &stop).await {
                return;
            }
            continue;
        };
        if status.connections.fetch_add(1, Ordering::Relaxed) > 0 {
            metrics::counter!("pricehub_feed_reconnects_total").increment(1);
        }
        status.connected.store(true, Ordering::Relaxed);
        connected_gauge.set(1.0);
        tracing::info!(%provider, "connected to the provider");
        let since = Instant::now();
        let ended = read_connection(stream, run_id, &mut seq, &tx, &latest, &status, &stop).await;
        status.connected.store(false, Ordering::Relaxed);
        connected_gauge.set(0.0);
        match ended {
            Ended::Stopped => return,
            Ended::Closed => tracing::warn!(%provider, "the provider closed the connection"),
            Ended::Failed(why) => {
                tracing::warn!(%provider, error = %why, "connection reset")
            }
        }
        if since.elapsed() >= HEALTHY_CONNECTION {
            backoff.reset();
        }
        if !sleep_or_stop(backoff.next(), &stop).await {
            return;
        }
    }
}

/// One attempt to connect within `CONNECT_TIMEOUT`; `None` when it failed (logged here)
/// or `stop` came first.
async fn connect(provider: &str, stop: &CancellationToken) -> Option<TcpStream> {
    let connect = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(provider)) => r,
        _ = stop.cancelled() => return None,
    };
    match connect {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::warn!(%provider, error = %e, "cannot connect to the provider");
            None
        }
        Err(_) => {
            tracing::warn!(%provider, "connecting to the provider timed out");
            None
        }
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

fn reject(status: &CollectorStatus, reason: &'static str) {
    status.rejected.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("pricehub_feed_trades_rejected_total", "reason" => reason).increment(1);
}

async fn read_connection(
    mut stream: TcpStream,
    run_id: i64,
    seq: &mut i64,
    tx: &mpsc::UnboundedSender<Vec<Receipt>>,
    latest: &LatestPrices,
    status: &CollectorStatus,
    stop: &CancellationToken,
) -> Ended {
    let received = metrics::counter!("pricehub_feed_trades_received_total");
    let mut decoder = SkippingDecoder::new();
    let mut buf = BytesMut::with_capacity(128 << 10);
    loop {
        if buf.capacity() - buf.len() < 16 << 10 {
            buf.reserve(128 << 10);
        }
        let read = tokio::select! {
            r = stream.read_buf(&mut buf) => r,
            _ = stop.cancelled() => return Ended::Stopped,
        };
        let eof = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => return Ended::Failed(e.to_string()),
        };
        let (chunk, fatal) = decode_chunk(&mut decoder, &mut buf, eof, run_id, seq, status);
        if !chunk.is_empty() && !hand_over(chunk, tx, latest, status, &received) {
            return Ended::Stopped;
        }
        if let Some(e) = fatal {
            return Ended::Failed(format!("undecodable stream ({}): {e}", e.label()));
        }
        if eof {
            return Ended::Closed;
        }
    }
}

/// Decodes every complete frame in `buf` into receipts numbered on from `*seq`. Bad
/// frames are counted and skipped; a fatal error ends the chunk (and is returned).
fn decode_chunk(
    decoder: &mut SkippingDecoder,
    buf: &mut BytesMut,
    eof: bool,
    run_id: i64,
    seq: &mut i64,
    status: &CollectorStatus,
) -> (Vec<Receipt>, Option<FrameError>) {
    let mut chunk = Vec::new();
    let received_ms = now_ms() as i64;
    loop {
        let item = if eof {
            decoder.decode_eof(buf)
        } else {
            decoder.decode(buf)
        };
        match item {
            Ok(Some(Ok(trade))) => {
                if trade.timestamp_ms > i64::MAX as u64 {
                    reject(status, "timestamp_out_of_range");
                    continue;
                }
                chunk.push(Receipt {
                    run_id,
                    seq: *seq,
                    received_ms,
                    trade,
                });
                *seq += 1;
            }
            Ok(Some(Err(e))) => reject(status, e.label()),
            Ok(None) => return (chunk, None),
            Err(e) => {
                reject(status, e.label());
                return (chunk, Some(e));
            }
        }
    }
}

/// Publishes a decoded chunk (latest prices, counters) and hands it to the writer;
/// `false` when the writer is gone.
fn hand_over(
    chunk: Vec<Receipt>,
    tx: &mpsc::UnboundedSender<Vec<Receipt>>,
    latest: &LatestPrices,
    status: &CollectorStatus,
    received: &metrics::Counter,
) -> bool {
    let n = chunk.len() as u64;
    latest.update(chunk.iter().map(|r| &r.trade));
    status.received.fetch_add(n, Ordering::Relaxed);
    status.pending.fetch_add(n, Ordering::Relaxed);
    received.increment(n);
    tx.send(chunk).is_ok()
}

/// A batch being written, kept (shared with the write task) until it has committed.
struct Batch {
    receipts: Arc<Vec<Receipt>>,
    /// Spool segment it was read from, and whether it is the segment's last batch.
    from_spool: Option<(std::path::PathBuf, bool)>,
}

struct Flushed {
    result: anyhow::Result<store::BatchOutcome>,
    elapsed: Duration,
}

/// The write in progress and the batch it writes (kept here, so that a write abandoned
/// at shutdown can still be spooled).
struct Inflight {
    handle: tokio::task::JoinHandle<Flushed>,
    batch: Batch,
}

/// The collector's writer task: everything received and not yet committed (memory
/// queue, batches in flight, the spool), and the writes to the database.
struct TradeWriter {
    db: Db,
    opts: CollectorOptions,
    status: Arc<CollectorStatus>,
    spool: Spool,
    mem: VecDeque<Receipt>,
    /// When the oldest trade in `mem` arrived.
    oldest_at: Option<Instant>,
    /// Batches whose write failed, oldest first, retried before anything else.
    retry: VecDeque<Batch>,
    /// Spool batches not yet committed (in flight or to retry), per segment.
    outstanding: std::collections::HashMap<std::path::PathBuf, usize>,
    /// Spool segments read to their end.
    fully_read: std::collections::HashSet<std::path::PathBuf>,
    migrated: Arc<AtomicBool>,
    committed: Arc<tokio::sync::Notify>,
    /// The database's identity, learnt at first contact (checked against the spool).
    identity: Arc<std::sync::OnceLock<SpoolLabel>>,
    /// An empty write is out to reach the database, so the spool can be checked.
    probing: bool,
}

impl TradeWriter {
    fn new(
        db: Db,
        opts: CollectorOptions,
        status: Arc<CollectorStatus>,
        spool: Spool,
        committed: Arc<tokio::sync::Notify>,
    ) -> Self {
        let migrated = Arc::new(AtomicBool::new(!opts.migrate));
        TradeWriter {
            db,
            opts,
            status,
            spool,
            mem: VecDeque::new(),
            oldest_at: None,
            retry: VecDeque::new(),
            outstanding: Default::default(),
            fully_read: Default::default(),
            migrated,
            committed,
            identity: Default::default(),
            probing: false,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Vec<Receipt>>) -> anyhow::Result<()> {
        let flush_interval = Duration::from_millis(self.opts.flush_interval_ms);
        // Writes in progress, oldest first. Batches overlap (PostgreSQL then works on
        // several connections); a spool segment is deleted only once every batch read
        // from it has committed (see `remove_if_done`).
        let mut inflight: VecDeque<Inflight> = VecDeque::new();
        let mut retry_at: Option<Instant> = None;
        let mut backoff = Backoff::new();
        // Set once the reader is gone (shutdown): flush everything, then stop.
        let mut deadline: Option<Instant> = None;
        loop {
            let draining = deadline.is_some();
            if retry_at.is_none_or(|t| t <= Instant::now()) {
                retry_at = None;
                self.start_writes(&mut inflight, draining, flush_interval)?;
            }
            if draining && inflight.is_empty() && self.retry.is_empty() && self.mem.is_empty() {
                break;
            }
            let timer = self.next_wake(&inflight, retry_at, deadline, flush_interval);
            tokio::select! {
                chunk = rx.recv(), if !draining => match chunk {
                    Some(chunk) => self.accept(chunk)?,
                    None => {
                        deadline = Some(Instant::now() + Duration::from_secs(self.opts.shutdown_timeout));
                        tracing::info!(pending = self.status.pending.load(Ordering::Relaxed), "collector stopping; flushing");
                    }
                },
                // Completions are taken in order: a later batch that finished first waits.
                done = async { match inflight.front_mut() { Some(f) => (&mut f.handle).await, None => std::future::pending().await } } => {
                    let batch = inflight.pop_front().expect("a write was in flight").batch;
                    match done {
                        Ok(flushed) => {
                            if self.finish(batch, flushed)? {
                                backoff.reset();
                            } else {
                                retry_at = Some(Instant::now() + backoff.next());
                            }
                        }
                        Err(e) => anyhow::bail!("database write task failed: {e}"),
                    }
                },
                _ = tokio::time::sleep_until(timer) => {
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        break;
                    }
                },
            }
        }
        self.spool_leftovers(inflight)
    }

    /// Starts writes until `--max-inflight` are out or nothing is ready to write.
    fn start_writes(
        &mut self,
        inflight: &mut VecDeque<Inflight>,
        draining: bool,
        flush_interval: Duration,
    ) -> anyhow::Result<()> {
        let max_inflight = self.opts.max_inflight.max(1) as usize;
        while inflight.len() < max_inflight {
            let Some(batch) = self.next_batch(draining, flush_interval)? else {
                break;
            };
            inflight.push_back(self.spawn_write(batch));
        }
        Ok(())
    }

    /// When the loop must wake up if nothing arrives: the oldest trade's flush, a retry,
    /// the shutdown deadline, or a spool replay.
    fn next_wake(
        &self,
        inflight: &VecDeque<Inflight>,
        retry_at: Option<Instant>,
        deadline: Option<Instant>,
        flush_interval: Duration,
    ) -> Instant {
        [
            self.oldest_at.map(|t| t + flush_interval),
            retry_at,
            deadline,
            // Replay the spool when the database is back.
            (self.spool.is_active() && inflight.is_empty())
                .then(|| Instant::now() + flush_interval),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// At shutdown: whatever the database did not take goes to the spool, durably.
    fn spool_leftovers(mut self, mut inflight: VecDeque<Inflight>) -> anyhow::Result<()> {
        let mut left: Vec<Receipt> = Vec::new();
        for b in self.retry.drain(..) {
            if b.from_spool.is_none() {
                left.extend(b.receipts.iter().cloned());
            }
        }
        for f in inflight.drain(..) {
            f.handle.abort();
            // The write may or may not have committed: spool it anyway (a batch read from
            // the spool is still there); the receipt key makes a second copy a no-op.
            if f.batch.from_spool.is_none() {
                left.extend(f.batch.receipts.iter().cloned());
            }
        }
        left.extend(self.mem.drain(..));
        if !left.is_empty() {
            tracing::warn!(
                trades = left.len(),
                "the database did not take everything before shutdown; spooled for the next start"
            );
            self.spool.append(&left)?;
        }
        self.spool.rotate()?;
        self.status.pending.store(0, Ordering::Relaxed);
        tracing::info!(
            stored = self.status.stored.load(Ordering::Relaxed),
            spool_bytes = self.spool.bytes(),
            "collector stopped"
        );
        Ok(())
    }

    fn accept(&mut self, chunk: Vec<Receipt>) -> anyhow::Result<()> {
        let max = self.opts.max_buffered as usize;
        if self.spool.is_active() || self.mem.len() + chunk.len() > max {
            if !self.spool.is_active() {
                tracing::warn!(
                    buffered = self.mem.len(),
                    "in-memory buffer full; spooling received trades to disk"
                );
            }
            self.spool.append(&chunk).context("writing to the spool")?;
            self.spool_gauge();
        } else {
            if self.mem.is_empty() {
                self.oldest_at = Some(Instant::now());
            }
            self.mem.extend(chunk);
            metrics::gauge!("pricehub_feed_buffered_trades").set(self.mem.len() as f64);
        }
        Ok(())
    }

    fn spool_gauge(&self) {
        let bytes = self.spool.bytes();
        self.status.spool_bytes.store(bytes, Ordering::Relaxed);
        metrics::gauge!("pricehub_feed_spool_bytes").set(bytes as f64);
    }

    /// What to write next, if anything is due: a failed batch again, then memory (full
    /// batch, or the oldest trade waited long enough, or draining), then the spool.
    fn next_batch(
        &mut self,
        draining: bool,
        flush_interval: Duration,
    ) -> anyhow::Result<Option<Batch>> {
        if let Some(b) = self.retry.pop_front() {
            return Ok(Some(b));
        }
        if let Some(b) = self.memory_batch(draining, flush_interval) {
            return Ok(Some(b));
        }
        if !self.mem.is_empty() || draining || !self.spool.is_active() {
            return Ok(None);
        }
        if !self.spool.is_checked() {
            // Reach the database (an empty write) to learn its identity: the spool is
            // replayed only into the database it was written for.
            if self.probing {
                return Ok(None);
            }
            self.probing = true;
            return Ok(Some(Batch {
                receipts: Arc::new(Vec::new()),
                from_spool: None,
            }));
        }
        self.spool_batch()
    }

    /// Up to `--batch-size` trades from memory, when a full batch is there, the oldest
    /// trade waited long enough, or the writer is draining.
    fn memory_batch(&mut self, draining: bool, flush_interval: Duration) -> Option<Batch> {
        let size = self.opts.batch_size as usize;
        let due = self.mem.len() >= size
            || draining
            || self
                .oldest_at
                .is_some_and(|t| t.elapsed() >= flush_interval);
        if self.mem.is_empty() || !due {
            return None;
        }
        let n = self.mem.len().min(size);
        let receipts: Vec<Receipt> = self.mem.drain(..n).collect();
        self.oldest_at = (!self.mem.is_empty()).then(Instant::now);
        metrics::gauge!("pricehub_feed_buffered_trades").set(self.mem.len() as f64);
        Some(Batch {
            receipts: Arc::new(receipts),
            from_spool: None,
        })
    }

    /// The next batch of the spool replay, in order of arrival; segments read to their
    /// end and already committed are removed on the way.
    fn spool_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        let size = self.opts.batch_size as usize;
        if !self.spool.has_unread() {
            // Replay what is being appended too: close it so it can be read.
            self.spool.rotate().context("closing a spool segment")?;
        }
        while let Some(b) = self.spool.read_batch(size).context("reading the spool")? {
            for reason in &b.corrupt {
                tracing::error!(segment = %b.segment.display(), reason, "unreadable spool record skipped");
                metrics::counter!("pricehub_feed_trades_rejected_total", "reason" => *reason)
                    .increment(1);
            }
            if b.last_in_segment {
                self.fully_read.insert(b.segment.clone());
            }
            if b.receipts.is_empty() {
                if b.last_in_segment {
                    self.remove_if_done(&b.segment)?;
                    continue;
                }
                return Ok(None);
            }
            *self.outstanding.entry(b.segment.clone()).or_default() += 1;
            return Ok(Some(Batch {
                receipts: Arc::new(b.receipts),
                from_spool: Some((b.segment, b.last_in_segment)),
            }));
        }
        Ok(None)
    }

    /// Deletes a spool segment once it has been read to the end and every batch read
    /// from it has committed.
    fn remove_if_done(&mut self, segment: &std::path::Path) -> anyhow::Result<()> {
        let in_flight = self.outstanding.get(segment).copied().unwrap_or(0);
        if in_flight == 0 && self.fully_read.contains(segment) {
            self.spool
                .remove(segment)
                .context("removing a replayed spool segment")?;
            self.fully_read.remove(segment);
            self.outstanding.remove(segment);
            self.spool_gauge();
            tracing::info!(segment = %segment.display(), "spool segment replayed and removed");
        }
        Ok(())
    }

    fn spawn_write(&self, batch: Batch) -> Inflight {
        let db = self.db.clone();
        let migrated = self.migrated.clone();
        let identity = self.identity.clone();
        let receipts = batch.receipts.clone();
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let result = async {
                if !migrated.load(Ordering::Relaxed) {
                    db.migrate().await?;
                    migrated.store(true, Ordering::Relaxed);
                }
                if identity.get().is_none() {
                    let _ = identity.set(spool::database_label(&db).await?);
                }
                Ok(store::insert_batch(&db, &receipts).await?)
            }
            .await;
            Flushed {
                result,
                elapsed: started.elapsed(),
            }
        });
        Inflight { handle, batch }
    }

    /// Accounts for a finished write; returns whether it succeeded.
    fn finish(&mut self, batch: Batch, flushed: Flushed) -> anyhow::Result<bool> {
        let Flushed { result, elapsed } = flushed;
        match result {
            Ok(outcome) => {
                self.write_committed(batch, outcome, elapsed)?;
                Ok(true)
            }
            Err(e) => {
                self.write_failed(batch, e);
                Ok(false)
            }
        }
    }

    fn write_committed(
        &mut self,
        batch: Batch,
        outcome: store::BatchOutcome,
        elapsed: Duration,
    ) -> anyhow::Result<()> {
        let n = batch.receipts.len() as u64;
        // First contact: the spool is checked against (or labelled for) the
        // database before anything is replayed from it.
        if !self.spool.knows_database()
            && let Some(db) = self.identity.get()
        {
            self.spool.check_identity(db).map_err(anyhow::Error::msg)?;
        }
        if n == 0 {
            self.probing = false;
            return Ok(());
        }
        let now = now_ms();
        record_flush(&batch, outcome.inserted, elapsed, now);
        self.status
            .stored
            .fetch_add(outcome.inserted, Ordering::Relaxed);
        self.status.pending.fetch_sub(
            n.min(self.status.pending.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        self.status.last_write_ms.store(now, Ordering::Relaxed);
        if outcome.inserted > 0 {
            self.committed.notify_one();
        }
        if !self.status.db_ok.swap(true, Ordering::Relaxed) {
            tracing::info!("database writable");
        }
        *self.status.db_error.lock() = None;
        if let Some((segment, _)) = &batch.from_spool {
            if let Some(n) = self.outstanding.get_mut(segment) {
                *n = n.saturating_sub(1);
            }
            self.remove_if_done(segment)?;
        }
        Ok(())
    }

    /// A failed write: the batch is retried as is (after the backoff).
    fn write_failed(&mut self, batch: Batch, e: anyhow::Error) {
        let n = batch.receipts.len() as u64;
        metrics::counter!("pricehub_feed_flush_failures_total").increment(1);
        if self.status.db_ok.swap(false, Ordering::Relaxed) || self.status.db_error.lock().is_none()
        {
            tracing::warn!(error = %format!("{e:#}"), trades = n, "database write failed; buffering and retrying");
        }
        *self.status.db_error.lock() = Some(format!("{e:#}"));
        self.retry.push_back(batch);
    }
}

/// The metrics of a committed batch of `inserted` new trades (`now`: when it was seen
/// committed, for the feed lag).
fn record_flush(batch: &Batch, inserted: u64, elapsed: Duration, now: u64) {
    let n = batch.receipts.len() as u64;
    let source = if batch.from_spool.is_some() {
        "spool"
    } else {
        "memory"
    };
    metrics::counter!("pricehub_feed_batches_total", "source" => source).increment(1);
    metrics::histogram!("pricehub_feed_flush_duration_seconds").record(elapsed.as_secs_f64());
    metrics::counter!("pricehub_feed_trades_stored_total").increment(inserted);
    if inserted < n {
        metrics::counter!("pricehub_feed_duplicates_skipped_total").increment(n - inserted);
    }
    if let Some(oldest) = batch.receipts.iter().map(|r| r.trade.timestamp_ms).min() {
        metrics::histogram!("pricehub_feed_lag_seconds")
            .record(now.saturating_sub(oldest) as f64 / 1000.0);
    }
}

/// What the collector's side port reads (`/readyz`).
#[derive(Clone)]
struct CollectorSideState {
    status: Arc<CollectorStatus>,
    db: Db,
    provider: String,
}

/// Ready = connected to the provider and the database writable, with detail either way.
async fn readyz(State(s): State<CollectorSideState>) -> impl IntoResponse {
    let connected = s.status.connected.load(Ordering::Relaxed);
    let recent_write =
        now_ms().saturating_sub(s.status.last_write_ms.load(Ordering::Relaxed)) < 5_000;
    // A write that just succeeded answers for the database; otherwise ask it.
    let (db_up, db_error) = if recent_write && s.status.db_ok.load(Ordering::Relaxed) {
        (true, None)
    } else {
        match tokio::time::timeout(Duration::from_secs(2), store::probe_writable(&s.db)).await {
            Ok(Ok(())) => (true, None),
            Ok(Err(e)) => (false, Some(e.to_string())),
            Err(_) => (false, Some("timed out".to_string())),
        }
    };
    let ready = connected && db_up;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "provider": {
                "status": if connected { "up" } else { "down" },
                "detail": { "addr": s.provider, "connections": s.status.connections.load(Ordering::Relaxed) },
            },
            "database": {
                "status": if db_up { "up" } else { "down" },
                "detail": {
                    "backend": s.db.backend().name(),
                    "writable": db_up,
                    "error": db_error,
                    "pending_trades": s.status.pending.load(Ordering::Relaxed),
                    "spool_bytes": s.status.spool_bytes.load(Ordering::Relaxed),
                },
            },
        },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}
