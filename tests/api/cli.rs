//! The real binary as a user types it: help, usage errors, the embedded default, and a
//! graceful SIGTERM.

use crate::common;

use common::process::{Proc, pricehub};

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
