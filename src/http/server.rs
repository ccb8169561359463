//! The HTTP server loop shared by the API and the feed processes' side ports: connection
//! limits (head timeout, idle timeout, head size, a cap on open connections), draining
//! and graceful shutdown.
//!
//! `axum::serve` has none of these knobs, so connections are served with hyper's HTTP/1
//! connection builder directly. hyper's own `header_read_timeout` is not used: its timer
//! also runs while a keep-alive connection waits for its next request, so it cannot tell
//! a slow head (slowloris) from an idle connection. Each connection has a small watchdog
//! instead that knows which of the two it is in (see [`Activity`]).
//!
//! Past the connection cap a new connection is answered `503` (problem+json,
//! `Retry-After`, `Connection: close`) and closed, so a client learns why instead of
//! hanging in the accept backlog or getting a reset; the descriptor it used is released
//! within a second. At most [`MAX_REFUSING`] refusals are in progress at once; beyond
//! that a connection is closed at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ConnArgs;

/// Refusals (503 past the cap) in progress at once; past it a connection is just closed.
pub const MAX_REFUSING: usize = 64;

/// hyper's default largest read buffer (8 KiB + 100 × 4 KiB).
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// Descriptors kept free for everything that is not a client connection (database pool,
/// Redis, spool files, the feed).
const FD_RESERVE: u64 = 256;

/// How a server runs: its metric label, its limits and its shutdown grace.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `server` label of the connection metrics: `api`, `provider` or `collector`.
    pub name: &'static str,
    pub conn: ConnArgs,
    /// How long in-flight requests may take to finish once the listener has closed.
    pub grace: Duration,
}

/// Serves `app` on `listener`. When `shutdown` is cancelled (SIGTERM), `/readyz` answers
/// 503 `draining` at once while everything else is still served for the drain delay;
/// then the listener closes, idle connections are closed, and in-flight requests get up
/// to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let name = opts.name;
    let max = effective_max_connections(opts.conn.http_max_connections, name);
    let open = metrics::gauge!("pricehub_http_connections", "server" => name);
    let refused = metrics::counter!("pricehub_http_connections_refused_total", "server" => name);
    // Registered at 0 so the series exist before the first connection (several servers
    // of one kind in a process, as in tests, share the series: never reset it).
    open.increment(0.0);
    refused.increment(0);
    let slots = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let tracker = TaskTracker::new();
    // Cancelled when the listener closes: connections finish what they are doing and end.
    let closing = CancellationToken::new();
    let limits = Arc::new(Limits::new(&opts.conn));

    let stop_accepting = async {
        shutdown.cancelled().await;
        tracing::info!(
            server = name,
            drain_delay_s = opts.conn.drain_delay,
            "draining: /readyz answers 503"
        );
        tokio::time::sleep(opts.conn.drain_delay()).await;
    };
    let mut stop_accepting = std::pin::pin!(stop_accepting);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop_accepting => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: the cap should prevent them; back off, never spin.
                    tracing::error!(server = name, error = %e, "accept error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refused.increment(1);
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                tracker.spawn(async move {
                    refuse(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        open.increment(1.0);
        let conn = Connection {
            app: app.clone(),
            remote,
            limits: limits.clone(),
            draining: shutdown.clone(),
            closing: closing.clone(),
        };
        let open = open.clone();
        tracker.spawn(async move {
            conn.run(stream).await;
            open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    tracker.close();
    if tokio::time::timeout(opts.grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            server = name,
            grace_s = opts.grace.as_secs(),
            "in-flight requests did not finish in time; exiting"
        );
    }
    Ok(())
}

/// The limits every connection of a server checks, in the units the watchdog uses.
struct Limits {
    header_timeout: Duration,
    idle_timeout: Duration,
    max_header_bytes: usize,
}

impl Limits {
    fn new(c: &ConnArgs) -> Limits {
        Limits {
            header_timeout: c.header_timeout(),
            idle_timeout: c.idle_timeout(),
            max_header_bytes: c.http_max_header_bytes as usize,
        }
    }
}

struct Connection {
    app: Router,
    remote: SocketAddr,
    limits: Arc<Limits>,
    draining: CancellationToken,
    closing: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let Connection {
            app,
            remote,
            limits,
            draining,
            closing,
        } = self;
        let svc_activity = activity.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            let draining = draining.clone();
            let guard = svc_activity.request_started();
            async move {
                if draining.is_cancelled() && req.uri().path() == "/readyz" {
                    return Ok::<_, std::convert::Infallible>(with_guard(draining_ready(), guard));
                }
                req.extensions_mut().insert(ConnectInfo(remote));
                let resp = match app.oneshot(req.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok(with_guard(resp, guard))
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(limits.max_header_bytes)
            // hyper's default read buffer (bodies stream through it), larger only when
            // the head limit needs it.
            .max_buf_size(limits.max_header_bytes.max(HYPER_DEFAULT_MAX_BUF));
        let conn = builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut closing_seen = false;
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = closing.cancelled(), if !closing_seen => {
                    closing_seen = true;
                    conn.as_mut().graceful_shutdown();
                }
                expired = activity.watch(&limits) => {
                    tracing::debug!(%remote, reason = expired, "closing connection");
                    return;
                }
            }
        }
    }
}

/// `/readyz` while draining: the same shape as a not-ready answer, so probes and load
/// balancers take the process out of rotation at once.
fn draining_ready() -> Response<Body> {
    let mut resp = Response::new(Body::from(r#"{"status":"draining","checks":{}}"#));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Keeps `guard` alive until the response body has been sent (or dropped), so a
/// streaming response counts as a request in progress for its whole life.
fn with_guard(resp: Response<Body>, guard: RequestGuard) -> Response<Body> {
    resp.map(|inner| {
        Body::new(Guarded {
            inner,
            _guard: guard,
        })
    })
}

/// A response body that holds a [`RequestGuard`]; size and end are the inner body's, so
/// `Content-Length` is kept.
struct Guarded {
    inner: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection is doing, for its watchdog: requests in progress, and since when it
/// has been waiting for a request head (and whether any byte of it has arrived).
struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` at which the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds after `start` of the first byte read while idle; `NONE` if none.
    head_started: AtomicU64,
    /// Requests served so far (the first head is timed from the accept).
    served: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            served: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// When the connection must be closed if nothing changes, and why; `None` while a
    /// request is in progress.
    fn deadline(&self, limits: &Limits) -> Option<(Duration, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = Duration::from_millis;
        if self.served.load(Ordering::Relaxed) == 0 {
            return Some((limits.header_timeout, "request head not received in time"));
        }
        match self.head_started.load(Ordering::Relaxed) {
            NONE => Some((
                ms(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
                "idle keep-alive timeout",
            )),
            t => Some((
                ms(t) + limits.header_timeout,
                "request head not received in time",
            )),
        }
    }

    /// Resolves when the connection has outlived its deadline, with the reason.
    async fn watch(&self, limits: &Limits) -> &'static str {
        loop {
            let now = self.start.elapsed();
            match self.deadline(limits) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => tokio::time::sleep(at - now).await,
                // Busy: look again later (a request ending moves the deadline forward).
                None => tokio::time::sleep(limits.header_timeout.min(limits.idle_timeout)).await,
            }
        }
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now_ms(), Ordering::Relaxed);
        a.head_started.store(NONE, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client socket, reporting reads to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The answer past the connection cap, built once: a problem+json 503 with
/// `Retry-After` and `Connection: close`.
fn refusal() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let body = serde_json::to_string(&super::problem::ProblemBody {
            kind: "urn:pricehub:problem:too-many-connections".into(),
            title: "Too many connections".into(),
            status: 503,
            detail: "the server is at its connection limit; retry shortly".into(),
        })
        .expect("a problem serializes");
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            super::problem::CONTENT_TYPE,
            body.len()
        )
        .into_bytes()
    })
}

/// Writes [`refusal`] without reading the request, then half-closes and drains the
/// socket briefly, so the client reads the answer instead of a reset caused by its
/// unread request.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(refusal()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left -= n.min(left),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The configured cap, lowered so that client connections cannot take the descriptors
/// the rest of the process needs.
fn effective_max_connections(configured: u64, name: &str) -> usize {
    let fd_limit = fd_limits().map(|(soft, _)| soft).unwrap_or(u64::MAX);
    let fit = fd_limit.saturating_sub(FD_RESERVE).max(1);
    if configured > fit {
        tracing::warn!(
            server = name,
            configured,
            effective = fit,
            fd_limit,
            "--http-max-connections lowered to fit the open-file limit"
        );
        fit as usize
    } else {
        configured as usize
    }
}

/// The open-file limit (soft, hard).
fn fd_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            // rlim_t is u64 on Linux, not everywhere.
            #[allow(clippy::unnecessary_cast)]
            return Some((lim.rlim_cur as u64, lim.rlim_max as u64));
        }
        None
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the open-file soft limit to the hard limit (once, at start-up) and logs both.
pub fn raise_fd_limit() {
    #[cfg(unix)]
    {
        let Some((soft, hard)) = fd_limits() else {
            tracing::warn!("cannot read the open-file limit");
            return;
        };
        if soft < hard {
            let lim = libc::rlimit {
                rlim_cur: hard as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: setrlimit reads the struct we pass.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
                let e = std::io::Error::last_os_error();
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
                return;
            }
        }
        let now = fd_limits().map(|(s, _)| s).unwrap_or(soft);
        tracing::info!(soft_before = soft, soft = now, hard, "open-file limit");
    }
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("can install a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
        t.cancel();
    });
    token
}

/// A token cancelled `delay` after `signal`: what background work that must outlive the
/// drain (cache invalidation, batch worker) stops on.
pub fn after_drain(signal: &CancellationToken, delay: Duration) -> CancellationToken {
    if delay.is_zero() {
        return signal.clone();
    }
    let token = CancellationToken::new();
    let (s, t) = (signal.clone(), token.clone());
    tokio::spawn(async move {
        s.cancelled().await;
        tokio::time::sleep(delay).await;
        t.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_content_length_is_right() {
        let text = std::str::from_utf8(refusal()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{}",
            body.len()
        );
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }

    #[test]
    fn deadlines_follow_the_connection_phase() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 1024,
        };
        let a = Arc::new(Activity::new());
        assert_eq!(a.deadline(&limits).unwrap().0, Duration::from_secs(10));
        let g = a.request_started();
        assert!(a.deadline(&limits).is_none());
        drop(g);
        let (at, why) = a.deadline(&limits).unwrap();
        assert!(at >= Duration::from_secs(60), "{at:?}");
        assert_eq!(why, "idle keep-alive timeout");
        a.bytes_read();
        let (at, why) = a.deadline(&limits).unwrap();
        assert!(at < Duration::from_secs(11), "{at:?}");
        assert_eq!(why, "request head not received in time");
    }
}
