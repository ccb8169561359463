#!/usr/bin/env python3
"""Memory cost of idle connections: RSS of `pricehub serve` (SQLite) before and after N
connections that each sent half a request line, then after the head timeout closed them.

    python3 bench/idle_connections.py [BIN] [N]     # defaults: target/release/pricehub 5000
"""
import os, re, resource, socket, subprocess, sys, tempfile, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/pricehub"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
TIMEOUT = 20

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


with tempfile.TemporaryDirectory() as d:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    p = subprocess.Popen([BIN, "serve", "--database-url", f"sqlite://{d}/t.db", "--listen",
                          f"127.0.0.1:{port}", "--log", "warn", "--http-header-timeout", str(TIMEOUT),
                          "--http-max-connections", str(N + 100)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close(); break
            except OSError:
                time.sleep(0.1)
        time.sleep(1)
        before = rss_kb(p.pid)
        t0 = time.monotonic()
        socks = []
        for _ in range(N):
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(b"GET /rates?date_fr")
            socks.append(c)
        t0 = time.monotonic()  # the last connection's head timer started about now
        time.sleep(2)
        during = rss_kb(p.pid)
        per = (during - before) * 1024 / N
        print(f"{N} half-open connections: RSS {before / 1024:.1f} MB -> {during / 1024:.1f} MB, "
              f"{per / 1024:.1f} KiB per connection")
        time.sleep(max(0, TIMEOUT + 3 - (time.monotonic() - t0)))
        closed = 0
        for c in socks:
            c.settimeout(0.01)
            try:
                closed += c.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except (socket.timeout, BlockingIOError):
                pass
        after = rss_kb(p.pid)
        print(f"after the {TIMEOUT} s head timeout: {closed}/{N} closed by the server, RSS {after / 1024:.1f} MB")
        for c in socks:
            c.close()
    finally:
        p.terminate(); p.wait()
