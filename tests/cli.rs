//! The real binary as a user types it: help, usage errors, the embedded default, and a
//! graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn pricehub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pricehub"));
    c.env_remove("DATABASE_URL")
        .env("PRICEHUB_LOG_FORMAT", "json");
    c
}

/// A running pricehub process and the JSON log lines it has written so far.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn pricehub");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line whose message contains `needle`; returns it parsed.
    fn wait_for(&mut self, needle: &str) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!(
                        "no log line with {needle:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                });
            self.seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"].as_str().is_some_and(|m| m.contains(needle))
            {
                return v;
            }
        }
    }

    fn addr(&mut self) -> String {
        let v = self.wait_for("listening");
        v["addr"]
            .as_str()
            .expect("addr in the listening line")
            .to_string()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("pricehub did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap())
    })
}

#[test]
fn help_lists_every_subcommand() {
    let out = pricehub().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "all", "import", "migrate"] {
        assert!(help.contains(sub), "--help lacks {sub}:\n{help}");
    }
    let out = pricehub().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_arguments_are_usage_errors_that_name_the_argument() {
    for (args, needle) in [
        (
            vec![
                "serve",
                "--listen",
                "nope",
                "--database-url",
                "sqlite://x.db",
            ],
            "--listen",
        ),
        (
            vec!["serve", "--database-url", "mysql://root:hunter2@db/x"],
            "unsupported database URL",
        ),
        (
            vec![
                "serve",
                "--database-url",
                "sqlite://x.db",
                "--rates-max-days",
                "0",
            ],
            "--rates-max-days",
        ),
        (vec!["serve"], "--database-url"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = pricehub().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("hunter2"),
            "a password leaked into an error: {err}"
        );
    }
}

#[test]
fn unreachable_database_is_a_clear_error_without_the_password() {
    let out = pricehub()
        .args([
            "migrate",
            "--database-url",
            "postgres://app:s3cret@127.0.0.1:1/rates",
            "--db-acquire-timeout",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to PostgreSQL at postgres://app:***@127.0.0.1:1/rates"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// The newcomer's command: no arguments (here only a port and a data directory) gives an
/// API on SQLite with demo data; a second start reuses the data.
#[test]
fn the_embedded_default_serves_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = Proc::spawn(
        pricehub()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("PRICEHUB_LOG", "info"),
    );
    p.wait_for("generated demo rates data");
    let addr = p.addr();
    let today = chrono::Utc::now().date_naive();
    let from = today - chrono::Days::new(6);
    let (s, body) = get(
        &addr,
        &format!(
            "/rates?date_from={from}&date_to={today}&orig_code=china_main&dest_code=northern_europe"
        ),
    );
    assert_eq!(s, 200, "{body}");
    let rates = body["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 7);
    assert!(
        rates
            .iter()
            .all(|r| r["price"].as_f64().is_some_and(|p| p > 100.0)),
        "{body}"
    );
    assert!(p.terminate().success());
    assert!(data.join("pricehub.db").is_file());

    let mut p = Proc::spawn(
        pricehub()
            .args(["all", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data),
    );
    let addr = p.addr();
    assert!(
        !p.seen.iter().any(|l| l.contains("generated demo")),
        "demo data generated twice"
    );
    let (s, _) = get(&addr, "/readyz");
    assert_eq!(s, 200);
    assert!(p.terminate().success());
}

/// SIGTERM: the server stops accepting, finishes what it has, and exits 0.
#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut p =
        Proc::spawn(pricehub().args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db]));
    let addr = p.addr();
    let (s, _) = get(&addr, "/livez");
    assert_eq!(s, 200);
    // An idle keep-alive connection must not hold the shutdown up.
    let _idle = std::net::TcpStream::connect(&addr).unwrap();
    let status = p.terminate();
    assert!(status.success(), "{status:?}");
    p.wait_for("SIGTERM received");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still accepting after shutdown"
    );
}
