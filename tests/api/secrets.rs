//! Secrets never leak: every subcommand runs — successful and failed
//! start-ups (wrong password, unreachable host, bad flag) — with a database password, an
//! ingest token and a Redis password set, at the most verbose log level; none of the
//! secret values may appear in stdout/stderr, `/metrics`, `/readyz`, `/version`, error
//! bodies, or `--help`.
//!
//! Real servers: a PostgreSQL started here that checks passwords (`scripts/pg.sh` with
//! `PG_PASSWORD`) and a `redis-server --requirepass`.

use crate::common;

use common::free_port;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DB_PASSWORD: &str = "pgPw-7d1e9c40";
const WRONG_DB_PASSWORD: &str = "wrongPw-0e4d51";
const TOKEN: &str = "tok-3b8f2a91c6";
const REDIS_PASSWORD: &str = "rdPw-5c0a17e2";
const WRONG_REDIS_PASSWORD: &str = "wrongRd-88a1f0";
const SECRETS: &[&str] = &[
    DB_PASSWORD,
    WRONG_DB_PASSWORD,
    TOKEN,
    REDIS_PASSWORD,
    WRONG_REDIS_PASSWORD,
];

/// Throw-away servers that check passwords; stopped on drop.
struct Servers {
    dir: tempfile::TempDir,
    pg_port: u16,
    redis_port: u16,
    redis_pid: Option<i32>,
}

impl Servers {
    fn start() -> Option<Servers> {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let pg = Command::new(&script)
            .arg("start")
            .arg(dir.path().join("pg"))
            .env("PG_FAST", "1")
            .env("PG_PASSWORD", DB_PASSWORD)
            .output();
        let pg_port = match pg {
            Ok(o) if o.status.success() => std::fs::read_to_string(dir.path().join("pg/port"))
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
            other => {
                eprintln!("scripts/pg.sh: {other:?}");
                common::unavailable("PostgreSQL server binaries");
                return None;
            }
        };
        let redis_port = free_port();
        let pidfile = dir.path().join("redis.pid");
        let redis = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .args(["--requirepass", REDIS_PASSWORD])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--dir")
            .arg(dir.path())
            .output();
        let mut servers = Servers {
            dir,
            pg_port,
            redis_port,
            redis_pid: None,
        };
        if !redis.is_ok_and(|o| o.status.success()) {
            common::unavailable("redis-server");
            return None;
        }
        for _ in 0..100 {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                && std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok()
            {
                servers.redis_pid = Some(pid);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(servers.redis_pid.is_some(), "redis-server did not start");
        Some(servers)
    }

    fn db_url(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres",
            self.pg_port
        )
    }

    fn redis_url(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/", self.redis_port)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(pid) = self.redis_pid {
            // SAFETY: signalling the redis-server this test started, by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let _ = Command::new(script)
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .status();
    }
}

/// Everything a test saw: process output, HTTP bodies; checked at the end.
#[derive(Default)]
struct Seen {
    texts: Vec<(String, String)>,
}

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.texts.push((what.into(), text.into()));
    }

    fn assert_no_secret(&self) {
        // For a human review of what was checked: SECRETS_TEST_DUMP=DIR writes it all.
        if let Some(dir) = std::env::var_os("SECRETS_TEST_DUMP") {
            std::fs::create_dir_all(&dir).unwrap();
            for (i, (what, text)) in self.texts.iter().enumerate() {
                let name: String = what
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                std::fs::write(Path::new(&dir).join(format!("{i:02}-{name}.txt")), text).unwrap();
            }
        }
        let mut leaks = Vec::new();
        for (what, text) in &self.texts {
            for s in SECRETS {
                if text.contains(s) {
                    let at = text.find(s).unwrap();
                    let from = text[..at]
                        .char_indices()
                        .rev()
                        .nth(150)
                        .map_or(0, |(i, _)| i);
                    let to = (at + s.len() + 100).min(text.len());
                    let to = (to..=text.len())
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap();
                    leaks.push(format!("{what} leaks {s:?}: …{}…", &text[from..to]));
                }
            }
        }
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
        assert!(self.texts.len() > 20, "too little was checked");
    }
}

/// A pricehub process with every secret in its environment and trace logging.
fn pricehub(servers: &Servers, db_password: &str, redis_password: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pricehub"));
    c.env("DATABASE_URL", servers.db_url(db_password))
        .env("PRICEHUB_INGEST_TOKEN", TOKEN)
        .env("REDIS_URL", servers.redis_url(redis_password))
        .env("PRICEHUB_LOG", "trace")
        .env("PRICEHUB_LOG_FORMAT", "json")
        .env("PRICEHUB_BTC_RATE_FIXED", "USD=60000,EUR=50000,GBP=40000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A running process whose stdout and stderr are collected.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd.spawn().expect("spawn pricehub");
        let out = Arc::new(Mutex::new(String::new()));
        for mut pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Running { child, out }
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.out.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in:\n{}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the whole output.
    fn stop(mut self) -> String {
        // SAFETY: signalling the child this test started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.finish(Duration::from_secs(20))
    }

    /// Waits for exit; returns the output (exit status appended).
    fn finish(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(200));
        format!("{}\n[exit: {status}]", self.out.lock().unwrap())
    }
}

/// Runs a command to its end (at most 60 s); returns (success, output).
fn run(cmd: &mut Command) -> (bool, String) {
    let mut r = Running::spawn(cmd);
    let out = r.finish(Duration::from_secs(60));
    (out.ends_with("[exit: exit status: 0]"), out)
}

async fn http(method: &str, url: &str, body: Option<(&str, &str)>, token: Option<&str>) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some((ct, b)) = body {
        req = req.header("content-type", ct).body(b.to_string());
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = format!("{:?}", r.headers());
            format!("{status} {headers} {}", r.text().await.unwrap_or_default())
        }
        Err(e) => format!("request failed: {e}"),
    }
}

fn write_dump(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.sql");
    std::fs::write(
        &path,
        "COPY public.regions (slug, name, parent_slug) FROM stdin;\nr1\tRegion\t\\N\n\\.\n\
         COPY public.ports (code, name, parent_slug) FROM stdin;\nAAAAA\tA\tr1\nBBBBB\tB\tr1\n\\.\n\
         COPY public.prices (orig_code, dest_code, day, price) FROM stdin;\nAAAAA\tBBBBB\t2021-01-01\t100\n\\.\n",
    )
    .unwrap();
    path
}

/// The API's pages and error answers, with and without the token.
async fn probe_api(seen: &mut Seen, what: &str, base: &str) {
    for path in ["/metrics", "/readyz", "/livez", "/version", "/openapi.json"] {
        seen.add(
            format!("{what} GET {path}"),
            http("GET", &format!("{base}{path}"), None, None).await,
        );
    }
    let bad_batch = Some(("application/json", r#"[{"orig_code":"NOPE1"}]"#));
    for (m, path, body, token) in [
        ("POST", "/prices", bad_batch, Some("wrong-token")),
        ("POST", "/prices", bad_batch, None),
        ("POST", "/prices", bad_batch, Some(TOKEN)),
        ("POST", "/batches", Some(("text/plain", "x")), Some(TOKEN)),
        (
            "POST",
            "/orders",
            Some(("application/json", r#"{"currency":"EUR","amount":"10"}"#)),
            None,
        ),
        ("POST", "/orders", Some(("application/json", "{")), None),
        ("GET", "/rates?date_from=x", None, None),
        ("GET", "/batches/nope", None, None),
        ("GET", "/orders", None, None),
        ("GET", "/no-such-route", None, None),
    ] {
        seen.add(
            format!("{what} {m} {path}"),
            http(m, &format!("{base}{path}"), body, token).await,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subcommand_leaks_a_secret() {
    let Some(servers) = Servers::start() else {
        return;
    };
    let mut seen = Seen::default();
    let pw = |c: &mut Command| -> (bool, String) { run(c) };

    // --help of every subcommand, with the secrets in the environment.
    for sub in ["serve", "all", "import", "migrate", "provider", "collector"] {
        let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args([sub, "--help"]));
        assert!(ok, "{sub} --help: {out}");
        seen.add(format!("{sub} --help"), out);
    }
    let (_, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).arg("--help"));
    seen.add("--help", out);

    // migrate: right password, wrong password, unreachable host, bad flag.
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).arg("migrate"));
    assert!(ok, "migrate: {out}");
    seen.add("migrate", out);
    let (ok, out) = pw(pricehub(&servers, WRONG_DB_PASSWORD, REDIS_PASSWORD).arg("migrate"));
    assert!(!ok, "migrate with a wrong password succeeded: {out}");
    seen.add("migrate (wrong password)", out);
    let unreachable = format!(
        "postgres://postgres:{DB_PASSWORD}@127.0.0.1:{}/postgres",
        free_port()
    );
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD)
        .env("DATABASE_URL", &unreachable)
        .env("PRICEHUB_DB_ACQUIRE_TIMEOUT", "1")
        .arg("migrate"));
    assert!(!ok, "migrate against a closed port succeeded: {out}");
    seen.add("migrate (unreachable)", out);
    let (ok, out) =
        pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args(["migrate", "--bogus"]));
    assert!(!ok);
    seen.add("migrate --bogus", out);
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args([
        "migrate",
        "--database-url",
        &format!("mysql://u:{DB_PASSWORD}@h/d"),
    ]));
    assert!(!ok);
    seen.add("migrate --database-url mysql://", out);

    // import: a tiny dump; wrong password; a file that does not exist.
    let dump = write_dump(servers.dir.path());
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD)
        .arg("import")
        .arg(&dump));
    assert!(ok, "import: {out}");
    seen.add("import", out);
    let (ok, out) = pw(pricehub(&servers, WRONG_DB_PASSWORD, REDIS_PASSWORD)
        .arg("import")
        .arg(&dump));
    assert!(!ok);
    seen.add("import (wrong password)", out);
    let (ok, out) =
        pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args(["import", "/nonexistent.sql"]));
    assert!(!ok);
    seen.add("import (no file)", out);

    // serve: up with everything, then failed start-ups.
    let api = free_port();
    let r = Running::spawn(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{api}"),
    ]));
    r.wait_for("pricehub API listening");
    probe_api(&mut seen, "serve", &format!("http://127.0.0.1:{api}")).await;
    seen.add("serve", r.stop());
    for (what, db_pw, redis_pw) in [
        (
            "serve (wrong database password)",
            WRONG_DB_PASSWORD,
            REDIS_PASSWORD,
        ),
        (
            "serve (wrong Redis password)",
            DB_PASSWORD,
            WRONG_REDIS_PASSWORD,
        ),
    ] {
        let mut r = Running::spawn(pricehub(&servers, db_pw, redis_pw).args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ]));
        seen.add(what, r.finish(Duration::from_secs(30)));
    }
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args(["serve", "--bogus"]));
    assert!(!ok);
    seen.add("serve --bogus", out);
    let (ok, out) = pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD)
        .env(
            "REDIS_URL",
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/", free_port()),
        )
        .args(["serve", "--listen", "127.0.0.1:0"]));
    assert!(!ok, "serve with an unreachable Redis: {out}");
    seen.add("serve (unreachable Redis)", out);

    // all: everything in one process on the password-checked PostgreSQL.
    let api = free_port();
    let data = servers.dir.path().join("all-data");
    let r = Running::spawn(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args([
        "all",
        "--listen",
        &format!("127.0.0.1:{api}"),
        "--no-demo-data",
        "--data-dir",
        data.to_str().unwrap(),
    ]));
    r.wait_for("pricehub API listening");
    probe_api(&mut seen, "all", &format!("http://127.0.0.1:{api}")).await;
    seen.add("all", r.stop());

    // provider and collector, with the secrets in their environment.
    let (feed, side) = (free_port(), free_port());
    let provider = Running::spawn(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args([
        "provider",
        "--listen",
        &format!("127.0.0.1:{feed}"),
        "--http-listen",
        &format!("127.0.0.1:{side}"),
        "--rate",
        "200",
    ]));
    provider.wait_for("provider listening");
    for path in ["/metrics", "/readyz", "/livez", "/v1/bpi/currentprice.json"] {
        seen.add(
            format!("provider GET {path}"),
            http("GET", &format!("http://127.0.0.1:{side}{path}"), None, None).await,
        );
    }
    for (what, db_pw) in [
        ("collector", DB_PASSWORD),
        ("collector (wrong password)", WRONG_DB_PASSWORD),
    ] {
        let cside = free_port();
        let dir = servers.dir.path().join(format!("collector-{cside}"));
        let r = Running::spawn(pricehub(&servers, db_pw, REDIS_PASSWORD).args([
            "collector",
            "--provider",
            &format!("127.0.0.1:{feed}"),
            "--http-listen",
            &format!("127.0.0.1:{cside}"),
            "--data-dir",
            dir.to_str().unwrap(),
            "--flush-interval-ms",
            "50",
        ]));
        r.wait_for("collector started");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for path in ["/metrics", "/readyz", "/livez"] {
            seen.add(
                format!("{what} GET {path}"),
                http(
                    "GET",
                    &format!("http://127.0.0.1:{cside}{path}"),
                    None,
                    None,
                )
                .await,
            );
        }
        seen.add(what, r.stop());
    }
    let (ok, out) =
        pw(pricehub(&servers, DB_PASSWORD, REDIS_PASSWORD).args(["collector", "--bogus"]));
    assert!(!ok);
    seen.add("collector --bogus", out);
    seen.add("provider", provider.stop());

    // The output really is at trace level, and really went through start-up.
    let serve_log = &seen.texts.iter().find(|(w, _)| w == "serve").unwrap().1;
    assert!(
        serve_log.contains("\"level\":\"TRACE\"") || serve_log.contains("\"level\":\"DEBUG\""),
        "not verbose: {serve_log:.2000}"
    );
    seen.assert_no_secret();
}
