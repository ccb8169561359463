//! What the container image relies on, run against the real binary: `pricehub
//! healthcheck` (the image's HEALTHCHECK) and secrets read from `*_FILE` variables.

use crate::common;

use std::process::Command;

use common::process::{Proc, pricehub};

fn embedded(data: &std::path::Path) -> Command {
    let mut c = pricehub();
    c.args(["all", "--listen", "127.0.0.1:0", "--no-feed", "--data-dir"])
        .arg(data)
        .env("PRICEHUB_LOG", "debug");
    c
}

fn post_prices(addr: &str, token: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}/prices"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(r#"[{"orig_code":"CNSGH","dest_code":"NLRTM","day":"2021-03-01","price":1200}]"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

#[test]
fn healthcheck_exits_0_on_a_ready_server_and_1_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::spawn(&mut embedded(dir.path()));
    let addr = p.addr();

    let ok = pricehub()
        .args(["healthcheck", "--url", &format!("http://{addr}/readyz")])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("healthy: "));

    // The default URL is /readyz on loopback at the port of --listen (PRICEHUB_LISTEN in
    // the image, where the API listens on 0.0.0.0).
    let port = addr.rsplit(':').next().unwrap();
    let ok = pricehub()
        .arg("healthcheck")
        .env("PRICEHUB_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&format!("http://127.0.0.1:{port}/readyz")),
        "{ok:?}"
    );

    // Not 2xx: unhealthy, with the status in the report.
    let bad = pricehub()
        .args([
            "healthcheck",
            "--url",
            &format!("http://{addr}/no-such-route"),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("404"),
        "{bad:?}"
    );
    assert!(p.terminate().success());

    // Nothing listening any more.
    let down = pricehub()
        .args([
            "healthcheck",
            "--timeout",
            "2",
            "--url",
            &format!("http://{addr}/readyz"),
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(String::from_utf8_lossy(&down.stderr).contains("unhealthy"));
}

#[test]
fn the_ingest_token_comes_from_a_file_trimmed_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("ingest_token");
    std::fs::write(&token_file, "tok-from-a-file-81d3\n").unwrap();
    let mut p = Proc::spawn(
        embedded(&dir.path().join("data")).env("PRICEHUB_INGEST_TOKEN_FILE", &token_file),
    );
    let addr = p.addr();
    assert_eq!(post_prices(&addr, "tok-from-a-file-81d3"), 201);
    assert_eq!(post_prices(&addr, "wrong"), 401);
    assert!(p.terminate().success());
    p.wait_for("SIGTERM received");
    let logs = p.seen.join("\n");
    assert!(
        !logs.contains("tok-from-a-file"),
        "the token reached the log:\n{logs}"
    );
}

#[test]
fn a_database_url_file_is_used_like_database_url() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(url) = rt.block_on(common::pg::fresh_database(false)) else {
        return;
    };
    let url = url.expose().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("database_url");
    std::fs::write(&file, format!("  {url}\n\n")).unwrap();
    let out = pricehub()
        .arg("migrate")
        .env("DATABASE_URL_FILE", &file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("migrations applied"),
        "{out:?}"
    );
}

/// Bad `*_FILE` settings are usage errors (exit 2) that name the variable and the file
/// and never print what is inside.
#[test]
fn bad_secret_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let real = dir.path().join("real");
    std::fs::write(&real, "redis://:hunter2@127.0.0.1:1/").unwrap();
    let missing = dir.path().join("missing");
    for (vars, needle) in [
        (
            vec![("PRICEHUB_INGEST_TOKEN_FILE", missing.to_str().unwrap())],
            "cannot read PRICEHUB_INGEST_TOKEN_FILE",
        ),
        (
            vec![("DATABASE_URL_FILE", empty.to_str().unwrap())],
            "DATABASE_URL_FILE",
        ),
        (
            vec![
                ("REDIS_URL_FILE", real.to_str().unwrap()),
                ("REDIS_URL", "redis://:other@x/"),
            ],
            "both REDIS_URL and REDIS_URL_FILE are set",
        ),
    ] {
        let mut cmd = pricehub();
        cmd.args(["migrate", "--database-url", "sqlite://unused.db"]);
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{vars:?}: {err}");
        assert!(!err.contains("hunter2") && !err.contains("other@"), "{err}");
    }
}

/// `--database-password` (or its file) never appears in a connection error.
#[test]
fn the_database_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pw-9c1e77\n").unwrap();
    let out = pricehub()
        .args([
            "migrate",
            "--database-url",
            "postgres://app@127.0.0.1:1/rates",
            "--db-acquire-timeout",
            "1",
        ])
        .env("PRICEHUB_DATABASE_PASSWORD_FILE", &pw)
        .env("PRICEHUB_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("cannot connect to PostgreSQL"), "{all}");
    assert!(!all.contains("pw-9c1e77"), "{all}");
    let help = pricehub()
        .args(["serve", "--help"])
        .env("PRICEHUB_DATABASE_PASSWORD_FILE", &pw)
        .env("DATABASE_URL", "postgres://app:url-pw-31@db/x")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("pw-9c1e77") && !help.contains("url-pw-31"),
        "{help}"
    );
}
