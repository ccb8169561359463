#!/usr/bin/env python3
"""Load generator, sampler and trend report of bench/soak.sh (standard library only).

Load: paced loops per kind (rates reads, ingest batches, orders, the status page when
the API serves one at `/`); the feed load comes from the provider itself. Every response
outside 2xx and every transport failure is an error.

Samples every second per process: RSS (VmRSS) and open descriptors (/proc/PID/fd); for
the database: connections in pg_stat_activity. At the end the server-side error counters
(/metrics: 5xx responses, feed flush failures, rejected frames, dropped clients) are read.

Trend: least-squares slope over the second half of the run (the first half includes
warm-up: pools filling, caches, allocator arenas). A series "grows" when its fitted
growth over that half exceeds both an absolute floor and 5% of its mean; growth or any
error makes the exit status 1.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import threading
import time
import urllib.parse
import urllib.request

FLOORS = {"rss_mb": 4.0, "fds": 5.0, "db_connections": 3.0}


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=int, default=600)
    p.add_argument("--feed-rate", type=float, default=50000)
    p.add_argument("--api", required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--ports", required=True, help="comma-separated port codes")
    p.add_argument("--process", action="append", default=[], help="NAME=PID=BASE_URL")
    p.add_argument("--rates-per-s", type=float, default=40)
    p.add_argument("--orders-per-s", type=float, default=20)
    p.add_argument("--batches-per-s", type=float, default=1)
    p.add_argument("--batch-rows", type=int, default=500)
    p.add_argument("--status-per-s", type=float, default=5)
    p.add_argument("--out", required=True)
    return p.parse_args()


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.errors = {}
        self.samples_of_errors = []

    def record(self, kind, ok, what=""):
        with self.lock:
            d = self.ok if ok else self.errors
            d[kind] = d.get(kind, 0) + 1
            if not ok and len(self.samples_of_errors) < 20:
                self.samples_of_errors.append(f"{kind}: {what}")


def paced(rate, stop, fn):
    """Calls fn() `rate` times a second until stop is set (no catch-up bursts)."""
    interval = 1.0 / rate
    nxt = time.monotonic()
    while not stop.is_set():
        fn()
        nxt += interval
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()


class Client:
    """One keep-alive HTTP/1.1 connection, reopened after a failure."""

    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed while idle: reopen once.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def load_threads(args, counters, stop, has_status_page):
    ports = args.ports.split(",")
    rnd = random.Random(10)

    def kind(name, rate, make):
        client = Client(args.api)

        def one():
            method, path, body, headers, want = make()
            try:
                status, data = client.request(method, path, body, headers)
                counters.record(name, status in want, f"{status} {data[:200]!r}")
            except Exception as e:  # noqa: BLE001 - every failure is an error to count
                counters.record(name, False, repr(e))

        return threading.Thread(target=paced, args=(rate, stop, one), daemon=True)

    def rates():
        o, d = rnd.sample(ports, 2)
        q = urllib.parse.urlencode(
            {"date_from": "2021-01-01", "date_to": "2021-01-31", "orig_code": o, "dest_code": d}
        )
        return "GET", f"/rates?{q}", None, {}, (200,)

    def regions():
        q = "date_from=2021-01-01&date_to=2021-01-31&orig_code=china_main&dest_code=northern_europe"
        return "GET", f"/rates?{q}", None, {}, (200, 404)

    seq = [0]

    def batch():
        seq[0] += 1
        rows = [
            {
                "orig_code": rnd.choice(ports),
                "dest_code": rnd.choice(ports),
                "day": f"2021-02-{rnd.randint(1, 28):02d}",
                "price": rnd.randint(100, 5000),
            }
            for _ in range(args.batch_rows)
        ]
        headers = {
            "Authorization": f"Bearer {args.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"soak-{os.getpid()}-{seq[0]}",
        }
        return "POST", "/prices", json.dumps(rows), headers, (200, 201)

    def order():
        body = json.dumps({"currency": rnd.choice(["EUR", "GBP", "USD"]), "amount": "10.00"})
        return "POST", "/orders", body, {"Content-Type": "application/json"}, (200, 201)

    def orders_page():
        return "GET", "/orders?limit=20", None, {}, (200,)

    def status_page():
        return "GET", "/", None, {}, (200,)

    threads = [
        kind("rates", args.rates_per_s * 0.5, rates),
        kind("rates", args.rates_per_s * 0.5, rates),
        kind("rates_region", max(args.rates_per_s * 0.1, 1), regions),
        kind("ingest", args.batches_per_s, batch),
        kind("orders", args.orders_per_s, order),
        kind("orders_list", 2, orders_page),
    ]
    if has_status_page:
        threads.append(kind("status", args.status_per_s, status_page))
    return threads


def detect_status_page(api):
    try:
        with urllib.request.urlopen(api + "/", timeout=5) as r:
            return r.status == 200 and "text/html" in r.getheader("content-type", "")
    except Exception:  # noqa: BLE001 - a 404 problem means: no status page yet
        return False


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def db_connections(url):
    dbname = urllib.parse.urlparse(url).path.lstrip("/")
    out = subprocess.run(
        ["psql", "-qAt", url, "-c", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}'"],
        capture_output=True, text=True, timeout=10,
    )
    # The sampling connection itself is one of them.
    return int(out.stdout.strip()) - 1 if out.returncode == 0 else float("nan")


def scrape(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, v = line.rpartition(" ")
            try:
                values[name] = float(v)
            except ValueError:
                pass
    return values


def total(metrics, prefix, contains=""):
    return sum(v for k, v in metrics.items() if k.startswith(prefix) and contains in k)


def slope_per_min(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    den = sum((t - mt) ** 2 for t in ts)
    return 0.0 if den == 0 else 60.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den


def main():
    args = parse_args()
    procs = []
    for spec in args.process:
        name, pid, base = spec.split("=", 2)
        procs.append((name, int(pid), base))
    counters = Counters()
    stop = threading.Event()
    has_status = detect_status_page(args.api)
    print(f"soak: {args.duration} s; status page at /: {'yes' if has_status else 'no (not served)'}", flush=True)
    before = {name: scrape(base) for name, _, base in procs}
    threads = load_threads(args, counters, stop, has_status)
    for t in threads:
        t.start()

    series = {}  # (process, metric) -> [(t, value)]
    started = time.monotonic()
    next_sample = started
    last_print = started
    while time.monotonic() - started < args.duration:
        t = time.monotonic() - started
        for name, pid, _ in procs:
            series.setdefault((name, "rss_mb"), []).append((t, rss_mb(pid)))
            series.setdefault((name, "fds"), []).append((t, fds(pid)))
        series.setdefault(("postgres", "db_connections"), []).append((t, db_connections(args.database_url)))
        if time.monotonic() - last_print >= 60:
            last_print = time.monotonic()
            rss = ", ".join(f"{n} {series[(n, 'rss_mb')][-1][1]:.1f} MB" for n, _, _ in procs)
            print(f"  t={t:.0f}s {rss}; errors so far {sum(counters.errors.values())}", flush=True)
        next_sample += 1.0
        time.sleep(max(0.0, next_sample - time.monotonic()))
    stop.set()
    for th in threads:
        th.join(timeout=35)
    elapsed = time.monotonic() - started
    after = {name: scrape(base) for name, _, base in procs}

    def delta(name, prefix, contains=""):
        return total(after[name], prefix, contains) - total(before[name], prefix, contains)

    server_errors = {
        "api 5xx responses": delta("api", "pricehub_http_requests_total", 'status="5xx"'),
        "collector flush failures": delta("collector", "pricehub_feed_flush_failures_total"),
        "collector rejected frames": delta("collector", "pricehub_feed_trades_rejected_total"),
        "collector reconnects": delta("collector", "pricehub_feed_reconnects_total"),
        "provider clients dropped (too slow)": delta("provider", "pricehub_provider_clients_dropped_total"),
    }
    stored = delta("collector", "pricehub_feed_trades_stored_total")
    generated = delta("provider", "pricehub_provider_trades_total")
    client_errors = sum(counters.errors.values())
    errors = client_errors + sum(server_errors.values())

    lines = [
        f"# Soak run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Duration {elapsed:.0f} s; feed at {args.feed_rate:.0f} trades/s; status page at `/`: "
        f"{'yes' if has_status else 'not served (skipped)'}.",
        "",
        "| load | ok | errors |",
        "|---|---|---|",
    ]
    for k in sorted(set(counters.ok) | set(counters.errors)):
        lines.append(f"| {k} | {counters.ok.get(k, 0)} | {counters.errors.get(k, 0)} |")
    lines += [
        "",
        f"Feed: {generated:.0f} trades generated, {stored:.0f} stored "
        f"({stored / elapsed:.0f}/s over the run).",
        "",
        "| server-side error counter | increase |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.0f} |" for k, v in server_errors.items()]
    lines += [
        "",
        "| process | series | first-half mean | second-half mean | max | 2nd-half slope /min | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    grew = []
    for (proc, metric), pts in series.items():
        pts = [(t, v) for t, v in pts if v == v]
        if not pts:
            continue
        half = [(t, v) for t, v in pts if t >= elapsed / 2]
        first = [v for t, v in pts if t < elapsed / 2] or [0]
        ts, ys = [t for t, _ in half], [v for _, v in half]
        s = slope_per_min(ts, ys)
        mean2 = sum(ys) / len(ys) if ys else 0
        growth = s * (ts[-1] - ts[0]) / 60 if len(ts) > 1 else 0
        bad = growth > FLOORS[metric] and growth > 0.05 * mean2
        if bad:
            grew.append(f"{proc} {metric}")
        lines.append(
            f"| {proc} | {metric} | {sum(first) / len(first):.1f} | {mean2:.1f} | "
            f"{max(v for _, v in pts):.1f} | {s:+.3f} | {'GROWS' if bad else 'flat'} |"
        )
    lines += ["", f"Errors: {errors:.0f}. Growing: {', '.join(grew) or 'nothing'}."]
    if counters.samples_of_errors:
        lines += ["", "First errors:", ""] + [f"- `{e}`" for e in counters.samples_of_errors]
    report = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(report)
    print(report)
    ok = errors == 0 and not grew
    print("PASS: no errors, nothing grows" if ok else "FAIL: errors or growth (see above)")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
