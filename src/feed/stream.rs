//! `GET /instruments/stream`: the live feed as Server-Sent Events.
//!
//! **What an event holds.** The stream follows the stored `instruments` table (latest
//! price, time and trade count per symbol), so it says what has been *committed*, the
//! same thing `GET /instruments` answers. Two event types, both with a JSON `data` line:
//!
//! * `snapshot`: every instrument's state (`symbol`, `price`, `timestamp_ms`, `ticks`),
//!   sent first on a new connection (`reason: "connect"`) and when a resume cannot be
//!   served (`reason: "resume-unavailable"`);
//! * `update`: the instruments that changed since the previous event, each with its new
//!   state and `trades`, the number of trades committed since then.
//!
//! Both carry `published_ms`, when this process published the event, so a client can
//! measure delivery latency (and `timestamp_ms` of the trades, for latency from the feed).
//! Several commits in quick succession may be folded into one update: the stream carries
//! state, not every trade (`GET /instruments/{symbol}/trades` has those).
//!
//! **Ids and resume.** Every event has an id `<epoch>-<seq>`: `epoch` names this process's
//! hub (random at start), `seq` counts updates from 1. The hub keeps the last
//! `--stream-replay` updates; a reconnect with `Last-Event-ID` gets every update after
//! that id from there, then live ones, with no gap and no duplicate. An id that is too
//! old (already out of the replay buffer), from another process (a restart, another
//! replica behind the load balancer) or from the future gets a `snapshot` with
//! `reason: "resume-unavailable"` instead, which restores the full state: a client that
//! applies events as state changes loses nothing but intermediate prices. A malformed id
//! is a 400 problem.
//!
//! **Fan-out.** One hub per process: a single task re-reads the `instruments` table when
//! something was committed and fans the diff out to every client (one query per commit,
//! never one per client). What tells it that something was committed depends on the
//! setup: the in-process collector's commit path (`pricehub all`), PostgreSQL
//! `LISTEN pricehub_feed` (a statement trigger on `instruments` sends `NOTIFY`, see the
//! migration `20261201115001_stream_notify.sql`), or a short poll on SQLite.
//!
//! **Slow clients.** Each client has a bounded queue of `--stream-client-buffer` events.
//! A client whose queue is full when an event is published is dropped (its stream ends
//! after what is queued) and counted in `pricehub_stream_clients_dropped_total`; it can
//! reconnect and resume. Nobody else waits for it.
//!
//! **Heartbeats.** A comment line (`:heartbeat`) after `--stream-heartbeat` seconds
//! without an event keeps proxies from closing an idle stream and lets clients notice a
//! dead one. Streams end when the server shuts down; clients reconnect elsewhere.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::now_ms;
use super::store::{self, InstrumentRow};
use crate::app::AppState;
use crate::config::StreamArgs;
use crate::db::Db;
use crate::http::problem::{Kind, Problem, ProblemBody};

/// The PostgreSQL channel the `instruments` trigger notifies.
pub const CHANNEL: &str = "pricehub_feed";
/// Reconnection delay suggested to EventSource clients (`retry:`).
const RETRY: Duration = Duration::from_secs(2);

/// One instrument in an event.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct InstrumentState {
    #[schema(example = "BTCUSD")]
    pub symbol: String,
    /// Price of the latest committed trade.
    #[schema(example = 43001.13)]
    pub price: f64,
    /// Time of that trade, ms since the epoch (as stamped by the provider).
    #[schema(example = 1795415862219i64)]
    pub timestamp_ms: i64,
    /// Stored trades of this instrument in total.
    #[schema(example = 304)]
    pub ticks: i64,
    /// `update` only: trades committed since the previous event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    pub trades: Option<i64>,
}

/// The JSON `data` of an `update` or `snapshot` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEvent {
    /// When this process published the event, ms since the epoch.
    pub published_ms: u64,
    /// `snapshot` only: `connect` or `resume-unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "connect")]
    pub reason: Option<&'static str>,
    /// `update`: the instruments that changed; `snapshot`: all of them, by symbol.
    pub instruments: Vec<InstrumentState>,
}

/// An event rendered once and shared by every client's queue.
#[derive(Debug)]
struct Published {
    seq: u64,
    id: String,
    kind: &'static str,
    data: String,
}

impl Published {
    fn to_event(&self) -> Event {
        let e = Event::default()
            .id(&self.id)
            .event(self.kind)
            .data(&self.data);
        if self.kind == "snapshot" {
            e.retry(RETRY)
        } else {
            e
        }
    }
}

struct Inner {
    seq: u64,
    state: BTreeMap<String, InstrumentRow>,
    recent: VecDeque<Arc<Published>>,
    clients: Vec<mpsc::Sender<Arc<Published>>>,
}

/// The fan-out point of one process.
pub struct StreamHub {
    epoch: String,
    args: StreamArgs,
    inner: Mutex<Inner>,
    /// Poked when something may have been committed; the refresher re-reads the table.
    committed: Arc<Notify>,
    shutdown: CancellationToken,
}

/// What tells the hub that the feed committed something.
pub enum Trigger {
    /// A collector in this process (its commit path pokes the `Notify`).
    Commits(Arc<Notify>),
    /// PostgreSQL: LISTEN on [`CHANNEL`].
    Listen,
    /// SQLite with the collector elsewhere: poll every `--stream-poll-ms`.
    Poll,
}

impl Trigger {
    /// The in-process collector when there is one, else what the database offers.
    pub fn for_db(db: &Db, commits: Option<Arc<Notify>>) -> Trigger {
        match (commits, db) {
            (Some(n), _) => Trigger::Commits(n),
            (None, Db::Postgres(_)) => Trigger::Listen,
            (None, Db::Sqlite(_)) => Trigger::Poll,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Trigger::Commits(_) => "in-process collector",
            Trigger::Listen => "postgres LISTEN",
            Trigger::Poll => "sqlite poll",
        }
    }
}

/// Drops with the client's stream: keeps `pricehub_stream_clients` right however the
/// stream ends.
struct ClientGuard;

impl ClientGuard {
    fn new() -> Self {
        metrics::gauge!("pricehub_stream_clients").increment(1.0);
        ClientGuard
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        metrics::gauge!("pricehub_stream_clients").decrement(1.0);
    }
}

/// A `Last-Event-ID` that is not one of ours.
#[derive(Debug, PartialEq)]
pub struct BadEventId;

fn parse_id(id: &str) -> Result<(&str, u64), BadEventId> {
    let (epoch, seq) = id.trim().split_once('-').ok_or(BadEventId)?;
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BadEventId);
    }
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadEventId);
    }
    Ok((epoch, seq.parse().map_err(|_| BadEventId)?))
}

/// What changed from `state` to `rows`; updates `state`. A symbol not seen before counts
/// all its trades as new; a count that went down (table truncated) counts from zero.
fn diff(
    state: &mut BTreeMap<String, InstrumentRow>,
    rows: Vec<InstrumentRow>,
) -> Vec<InstrumentState> {
    let mut changed = Vec::new();
    for row in rows {
        let trades = match state.get(&row.symbol) {
            Some(old) if old == &row => continue,
            Some(old) if row.ticks >= old.ticks => row.ticks - old.ticks,
            _ => row.ticks,
        };
        changed.push(InstrumentState {
            symbol: row.symbol.clone(),
            price: row.last_price,
            timestamp_ms: row.last_ts_ms,
            ticks: row.ticks,
            trades: Some(trades),
        });
        state.insert(row.symbol.clone(), row);
    }
    changed
}

impl StreamHub {
    pub fn new(args: StreamArgs, shutdown: CancellationToken) -> Arc<StreamHub> {
        metrics::gauge!("pricehub_stream_clients").set(0.0);
        metrics::counter!("pricehub_stream_clients_dropped_total").increment(0);
        metrics::counter!("pricehub_stream_events_total").increment(0);
        Arc::new(StreamHub {
            epoch: format!("{:08x}", rand::rng().random::<u32>()),
            args,
            inner: Mutex::new(Inner {
                seq: 0,
                state: BTreeMap::new(),
                recent: VecDeque::new(),
                clients: Vec::new(),
            }),
            committed: Arc::new(Notify::new()),
            shutdown,
        })
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    /// Applies a fresh read of the table; publishes an update when something changed.
    fn apply(&self, rows: Vec<InstrumentRow>, publish: bool) {
        let mut inner = self.inner.lock();
        let instruments = diff(&mut inner.state, rows);
        if instruments.is_empty() || !publish {
            return;
        }
        inner.seq += 1;
        let seq = inner.seq;
        let data = serde_json::to_string(&StreamEvent {
            published_ms: now_ms(),
            reason: None,
            instruments,
        })
        .expect("events serialize");
        let event = Arc::new(Published {
            seq,
            id: self.id(seq),
            kind: "update",
            data,
        });
        if self.args.stream_replay > 0 {
            if inner.recent.len() as u64 >= self.args.stream_replay {
                inner.recent.pop_front();
            }
            inner.recent.push_back(event.clone());
        }
        let mut dropped = 0u64;
        inner.clients.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        drop(inner);
        metrics::counter!("pricehub_stream_events_total").increment(1);
        if dropped > 0 {
            metrics::counter!("pricehub_stream_clients_dropped_total").increment(dropped);
            tracing::warn!(
                clients = dropped,
                buffer = self.args.stream_client_buffer,
                "stream clients fell behind and were dropped"
            );
        }
    }

    fn snapshot(&self, inner: &Inner, reason: &'static str) -> Arc<Published> {
        let data = serde_json::to_string(&StreamEvent {
            published_ms: now_ms(),
            reason: Some(reason),
            instruments: inner
                .state
                .values()
                .map(|r| InstrumentState {
                    symbol: r.symbol.clone(),
                    price: r.last_price,
                    timestamp_ms: r.last_ts_ms,
                    ticks: r.ticks,
                    trades: None,
                })
                .collect(),
        })
        .expect("events serialize");
        Arc::new(Published {
            seq: inner.seq,
            id: self.id(inner.seq),
            kind: "snapshot",
            data,
        })
    }

    /// A new client: what it missed (or a snapshot), then live updates until it falls
    /// behind, disconnects or the server stops.
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<impl Stream<Item = Result<Event, Infallible>> + Send + 'static, BadEventId> {
        let resume = last_event_id.map(parse_id).transpose()?;
        let (tx, mut rx) = mpsc::channel(self.args.stream_client_buffer as usize);
        let first: Vec<Arc<Published>> = {
            let mut inner = self.inner.lock();
            let oldest_resumable = inner.seq - inner.recent.len() as u64;
            let first = match resume {
                None => vec![self.snapshot(&inner, "connect")],
                Some((epoch, seq))
                    if epoch == self.epoch && (oldest_resumable..=inner.seq).contains(&seq) =>
                {
                    inner
                        .recent
                        .iter()
                        .filter(|e| e.seq > seq)
                        .cloned()
                        .collect()
                }
                Some(_) => vec![self.snapshot(&inner, "resume-unavailable")],
            };
            inner.clients.push(tx);
            first
        };
        let guard = ClientGuard::new();
        let live = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(futures_util::stream::iter(first)
            .chain(live)
            .take_until(self.shutdown.clone().cancelled_owned())
            .map(move |p| {
                let _alive = &guard;
                Ok(p.to_event())
            }))
    }

    /// Number of connected clients (for logs and tests).
    pub fn clients(&self) -> usize {
        self.inner
            .lock()
            .clients
            .iter()
            .filter(|c| !c.is_closed())
            .count()
    }

    /// Starts the refresher (and, per trigger, the listener or poller) until shutdown.
    pub fn spawn(self: &Arc<Self>, db: Db, trigger: Trigger) -> Vec<tokio::task::JoinHandle<()>> {
        tracing::info!(trigger = trigger.name(), "instrument stream running");
        let committed = match &trigger {
            Trigger::Commits(n) => n.clone(),
            _ => self.committed.clone(),
        };
        let mut tasks = Vec::new();
        match trigger {
            Trigger::Commits(_) => {}
            Trigger::Listen => tasks.push(tokio::spawn(listen(
                db.clone(),
                committed.clone(),
                self.shutdown.clone(),
            ))),
            Trigger::Poll => {
                let poke = committed.clone();
                let stop = self.shutdown.clone();
                let every = Duration::from_millis(self.args.stream_poll_ms);
                tasks.push(tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tick.tick() => poke.notify_one(),
                        }
                    }
                }));
            }
        }
        let hub = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut loaded = false;
            let mut failing = false;
            loop {
                match store::list_instruments(&db).await {
                    Ok(rows) => {
                        // The first read is the starting state, not news.
                        hub.apply(rows, loaded);
                        loaded = true;
                        if std::mem::take(&mut failing) {
                            tracing::info!("instrument stream reads the database again");
                        }
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(error = %e, "instrument stream cannot read instruments; retrying on the next commit");
                        }
                        if !loaded {
                            // Nothing to compare against yet: retry on a timer too.
                            committed.notify_one();
                            tokio::select! {
                                _ = hub.shutdown.cancelled() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = hub.shutdown.cancelled() => return,
                    _ = committed.notified() => {}
                }
            }
        }));
        tasks
    }
}

/// LISTEN on [`CHANNEL`], poking `committed` on every notification and after every
/// reconnect (notifications sent while disconnected are lost; the re-read catches up).
async fn listen(db: Db, committed: Arc<Notify>, stop: CancellationToken) {
    let Db::Postgres(pool) = db else { return };
    let mut warned = false;
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    if !std::mem::replace(&mut warned, true) {
                        tracing::warn!(error = %e, "cannot LISTEN {CHANNEL}; retrying");
                    }
                    if !sleep_or_stop(&stop).await {
                        return;
                    }
                    continue;
                }
            },
            Err(e) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!(error = %e, "cannot connect to LISTEN {CHANNEL}; retrying");
                }
                if !sleep_or_stop(&stop).await {
                    return;
                }
                continue;
            }
        };
        if std::mem::take(&mut warned) {
            tracing::info!("listening on {CHANNEL} again");
        }
        committed.notify_one();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(_)) => committed.notify_one(),
                // Connection lost; the next call reconnects (and may fail).
                Ok(None) => committed.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN {CHANNEL} failed; reconnecting");
                    warned = true;
                    break;
                }
            }
        }
        if !sleep_or_stop(&stop).await {
            return;
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => true,
        _ = stop.cancelled() => false,
    }
}

/// Live instrument updates as Server-Sent Events.
///
/// Each event has an `id`, a type (`snapshot` or `update`) and one JSON `data` line
/// (the `StreamEvent` schema). A new connection starts with a `snapshot` of every
/// instrument; `update`s follow as trades are committed. Reconnecting with
/// `Last-Event-ID` replays the updates missed while they are still in the server's
/// replay buffer, else sends a `snapshot` with `reason: "resume-unavailable"`. Idle
/// streams carry a `:heartbeat` comment every `--stream-heartbeat` seconds. A client
/// that falls `--stream-client-buffer` events behind is disconnected.
#[utoipa::path(get, path = "/instruments/stream", tag = "feed",
    params(
        ("Last-Event-ID" = Option<String>, Header, description = "Id of the last event received, to resume after it", example = "9f3a61c2-42"),
    ),
    responses(
        (status = 200, description = "An event stream; each data line is a StreamEvent", body = StreamEvent, content_type = "text/event-stream"),
        (status = 400, description = "Last-Event-ID is not an id this API issues (`invalid-last-event-id`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let last = headers.get("last-event-id").map(|v| v.to_str());
    let last = match last {
        Some(Err(_)) => return bad_id().into_response(),
        Some(Ok(s)) if s.trim().is_empty() => None,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    match state.stream.subscribe(last) {
        Ok(events) => {
            let heartbeat = Duration::from_secs(state.stream.args.stream_heartbeat);
            let mut resp = Sse::new(events)
                .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
                .into_response();
            // Tell nginx and friends not to buffer the stream.
            resp.headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            resp
        }
        Err(BadEventId) => bad_id().into_response(),
    }
}

fn bad_id() -> Problem {
    Problem::new(
        Kind::InvalidLastEventId,
        "Last-Event-ID must be the id of an event from this stream (<epoch>-<seq>); omit it to start afresh",
    )
    .with("parameter", "Last-Event-ID")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(symbol: &str, price: f64, ts: i64, ticks: i64) -> InstrumentRow {
        InstrumentRow {
            symbol: symbol.into(),
            last_price: price,
            last_ts_ms: ts,
            ticks,
        }
    }

    fn args(buffer: u64, replay: u64) -> StreamArgs {
        StreamArgs {
            stream_client_buffer: buffer,
            stream_replay: replay,
            ..StreamArgs::default()
        }
    }

    #[test]
    fn ids_parse_and_garbage_is_refused() {
        assert_eq!(parse_id("9f3a61c2-42"), Ok(("9f3a61c2", 42)));
        for bad in [
            "",
            "42",
            "-42",
            "zz-1",
            "9f-",
            "9f-1-2",
            "9f--1",
            "9f-99999999999999999999999",
        ] {
            assert_eq!(parse_id(bad), Err(BadEventId), "{bad}");
        }
    }

    #[test]
    fn diff_reports_changes_and_trade_counts() {
        let mut state = BTreeMap::new();
        let first = diff(&mut state, vec![row("A", 1.0, 10, 5), row("B", 2.0, 10, 1)]);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].trades, Some(5));
        let second = diff(&mut state, vec![row("A", 1.5, 11, 8), row("B", 2.0, 10, 1)]);
        assert_eq!(second.len(), 1, "B did not change");
        assert_eq!(
            (second[0].symbol.as_str(), second[0].trades, second[0].price),
            ("A", Some(3), 1.5)
        );
        // Truncated and refilled: counts from zero.
        let third = diff(&mut state, vec![row("A", 3.0, 12, 2)]);
        assert_eq!(third[0].trades, Some(2));
    }

    async fn next(s: &mut (impl Stream<Item = Result<Event, Infallible>> + Unpin)) -> String {
        let e = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an event")
            .expect("stream open")
            .unwrap();
        format!("{e:?}")
    }

    #[tokio::test]
    async fn resume_replays_what_was_missed_and_old_ids_get_a_snapshot() {
        let hub = StreamHub::new(args(16, 3), CancellationToken::new());
        hub.apply(vec![row("A", 1.0, 1, 1)], false);
        for i in 2..=6 {
            hub.apply(vec![row("A", i as f64, i, i)], true);
        }
        // seq is 5; the replay buffer holds 3, 4, 5: ids 2..=5 can resume.
        let epoch = hub.epoch.clone();
        let mut s = Box::pin(hub.subscribe(Some(&format!("{epoch}-3"))).unwrap());
        assert!(next(&mut s).await.contains(&format!("{epoch}-4")));
        assert!(next(&mut s).await.contains(&format!("{epoch}-5")));
        let mut old = Box::pin(hub.subscribe(Some(&format!("{epoch}-1"))).unwrap());
        let e = next(&mut old).await;
        assert!(
            e.contains("resume-unavailable") && e.contains(&format!("{epoch}-5")),
            "{e}"
        );
        let mut foreign = Box::pin(hub.subscribe(Some("abc-3")).unwrap());
        assert!(next(&mut foreign).await.contains("resume-unavailable"));
        let mut future = Box::pin(hub.subscribe(Some(&format!("{epoch}-6"))).unwrap());
        assert!(next(&mut future).await.contains("resume-unavailable"));
        // Live events follow the replay.
        hub.apply(vec![row("A", 7.0, 7, 7)], true);
        assert!(next(&mut s).await.contains(&format!("{epoch}-6")));
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_client() {
        let hub = StreamHub::new(args(2, 0), CancellationToken::new());
        let mut fast = Box::pin(hub.subscribe(None).unwrap());
        let slow = hub.subscribe(None).unwrap();
        assert!(next(&mut fast).await.contains("snapshot"));
        for i in 1..=4 {
            hub.apply(vec![row("A", i as f64, i, i)], true);
            assert!(next(&mut fast).await.contains("update"));
        }
        assert_eq!(hub.clients(), 1, "the slow client was dropped");
        // The dropped client gets what was queued, then its stream ends.
        let got: Vec<_> = slow.collect().await;
        assert_eq!(got.len(), 1 + 2, "snapshot and two queued updates");
    }
}
