//! A Redis server for the tests: the one named by `PRICEHUB_TEST_REDIS_URL`, or a
//! throw-away one started here from the local `redis-server` (no persistence) and
//! stopped when the test process exits. Tests keep apart by key prefix.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

static URL: OnceLock<Option<String>> = OnceLock::new();
static OWN_PIDFILE: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_own_server() {
    if let Some(pidfile) = OWN_PIDFILE.get()
        && let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: signalling the server this process started, by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if let Some(dir) = pidfile.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start_own() -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("pricehub-test-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pidfile = dir.join("redis.pid");
    let port = super::free_port();
    let out = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .output()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let _ = OWN_PIDFILE.set(pidfile);
    // SAFETY: registering a plain extern "C" fn with no captured state.
    unsafe { libc::atexit(stop_own_server) };
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(format!("redis://127.0.0.1:{port}/"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("redis-server did not start listening".into())
}

/// URL of the test Redis, starting one if needed; `None` (said loudly) when unavailable.
pub fn url() -> Option<String> {
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("PRICEHUB_TEST_REDIS_URL") {
            return Some(url);
        }
        match start_own() {
            Ok(u) => Some(u),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        }
    })
    .clone()
    .or_else(|| {
        super::unavailable(
            "Redis (set PRICEHUB_TEST_REDIS_URL or install redis-server: scripts/install-deps.sh)",
        );
        None
    })
}

/// A key prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}
