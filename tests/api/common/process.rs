//! A pricehub process started from the real binary, with its JSON log lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary with JSON logs and no inherited DATABASE_URL.
pub fn pricehub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pricehub"));
    c.env_remove("DATABASE_URL")
        .env("PRICEHUB_LOG_FORMAT", "json");
    c
}

/// A running pricehub process and the JSON log lines it has written so far.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
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
    pub fn wait_for(&mut self, needle: &str) -> serde_json::Value {
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

    /// Every line the process wrote until it closed stderr (call after it has exited).
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits up to `within` for the process to exit on its own; returns whether it
    /// succeeded and everything it logged. Panics, with the log, when it does not exit.
    pub fn wait_exit(&mut self, within: Duration) -> (bool, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.success(), self.drain().join("\n"));
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "process did not exit within {within:?}; it logged:\n{}",
                    self.drain().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then [`Proc::wait_exit`] for up to 30 s.
    pub fn sigterm_and_wait(&mut self) -> (bool, String) {
        // SAFETY: signalling the child this harness started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.wait_exit(Duration::from_secs(30))
    }

    pub fn addr(&mut self) -> String {
        let v = self.wait_for("pricehub API listening");
        v["addr"]
            .as_str()
            .expect("addr in the listening line")
            .to_string()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

impl Proc {
    /// SIGKILL: no chance to clean up, as in a crash or an OOM kill.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider and a collector, each its own process, the collector storing into `db`
/// with its data directory under `dir`; returns once both are up.
pub fn spawn_feed(
    db: &str,
    dir: &std::path::Path,
    provider_args: &[&str],
    collector_args: &[&str],
) -> (Proc, Proc) {
    let mut provider = Proc::spawn(
        pricehub()
            .args([
                "provider",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(provider_args),
    );
    let addr = provider.wait_for("provider listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let mut collector = Proc::spawn(
        pricehub()
            .args([
                "collector",
                "--http-listen",
                "127.0.0.1:0",
                "--provider",
                &addr,
                "--database-url",
                db,
            ])
            .arg("--data-dir")
            .arg(dir.join("collector"))
            .args(collector_args),
    );
    collector.wait_for("collector started");
    (provider, collector)
}
