//! Load client for `bench/sse.sh`: holds N concurrent `GET /instruments/stream`
//! connections for a while and measures, for every `update` event each client receives,
//! the delivery latency from the event's `published_ms` (the server's fan-out) and from
//! the newest trade's `timestamp_ms` in it (the feed, through the collector's commit).
//!
//! `cargo run --release --example sse_client -- BASE_URL CLIENTS SECONDS`
//! prints one `key=value` line per result, for the script to read.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use parking_lot::Mutex;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Samples {
    fanout_ms: Vec<i64>,
    feed_ms: Vec<i64>,
    connected: usize,
    ended_early: usize,
    failed: usize,
}

/// Reads one stream until `until`, recording the latency of every update.
async fn client(http: reqwest::Client, url: String, until: Instant, out: Arc<Mutex<Samples>>) {
    let resp = match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => r,
        _ => {
            out.lock().failed += 1;
            return;
        }
    };
    out.lock().connected += 1;
    let mut body = resp.bytes_stream();
    let mut buf = Vec::<u8>::new();
    let (mut fanout, mut feed) = (Vec::new(), Vec::new());
    let mut ended = false;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let chunk = match tokio::time::timeout(left, body.next()).await {
            Err(_) => break,
            Ok(Some(Ok(c))) => c,
            Ok(_) => {
                ended = true;
                break;
            }
        };
        let received = now_ms();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            if !text.lines().any(|l| l == "event: update") {
                continue;
            }
            let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if let Some(p) = v["published_ms"].as_i64() {
                fanout.push(received - p);
            }
            if let Some(t) = v["instruments"]
                .as_array()
                .and_then(|a| a.iter().filter_map(|i| i["timestamp_ms"].as_i64()).max())
            {
                feed.push(received - t);
            }
        }
    }
    let mut o = out.lock();
    o.fanout_ms.extend(fanout);
    o.feed_ms.extend(feed);
    if ended {
        o.ended_early += 1;
    }
}

fn pct(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return -1;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: sse_client BASE_URL CLIENTS SECONDS");
        std::process::exit(2);
    }
    let url = format!("{}/instruments/stream", args[1].trim_end_matches('/'));
    let n: usize = args[2].parse().expect("CLIENTS is a number");
    let secs: u64 = args[3].parse().expect("SECONDS is a number");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let out = Arc::new(Mutex::new(Samples::default()));
    // Connect everyone first (a ramp of about a second), then measure for `secs`.
    let until = Instant::now() + Duration::from_secs(secs) + Duration::from_secs(2);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(client(
            http.clone(),
            url.clone(),
            until,
            out.clone(),
        )));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Tell the script when all are connected (it samples RSS then).
    loop {
        let done = {
            let s = out.lock();
            s.connected + s.failed >= n
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("all_connected_ms={}", now_ms());
    for t in tasks {
        let _ = t.await;
    }
    let mut s = std::mem::take(&mut *out.lock());
    let events = s.fanout_ms.len();
    println!("clients={n}");
    println!("connected={}", s.connected);
    println!("failed={}", s.failed);
    println!("ended_early={}", s.ended_early);
    println!("events={events}");
    for (name, v) in [("fanout", &mut s.fanout_ms), ("feed", &mut s.feed_ms)] {
        println!("{name}_p50_ms={}", pct(v, 0.50));
        println!("{name}_p99_ms={}", pct(v, 0.99));
        println!("{name}_max_ms={}", pct(v, 1.0));
    }
}
