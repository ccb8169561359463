//! A PostgreSQL server for the tests: the one named by `PRICEHUB_TEST_DATABASE_URL`, or a
//! throw-away one started from the local binaries (`scripts/pg.sh`) and stopped when the
//! test process exits.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use pricehub::config::{DatabaseUrl, DbArgs};
use pricehub::db::Db;
use sqlx::Connection;

static ADMIN_URL: OnceLock<Option<String>> = OnceLock::new();
static OWN_SERVER: OnceLock<PathBuf> = OnceLock::new();
static TEMPLATE: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);
static COUNTER: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_own_server() {
    if let Some(dir) = OWN_SERVER.get() {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let _ = Command::new(script).arg("stop").arg(dir).status();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Admin URL of the test server (`postgres` database), starting one if needed.
pub fn admin_url() -> Option<String> {
    ADMIN_URL
        .get_or_init(|| {
            if let Ok(url) = std::env::var("PRICEHUB_TEST_DATABASE_URL") {
                return Some(url);
            }
            let dir = std::env::temp_dir().join(format!("pricehub-test-pg-{}", std::process::id()));
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
            let out = Command::new(&script)
                .arg("start")
                .arg(&dir)
                .env("PG_FAST", "1")
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let _ = OWN_SERVER.set(dir);
                    // SAFETY: registering a plain extern "C" fn with no captured state.
                    unsafe { libc::atexit(stop_own_server) };
                    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
                }
                Ok(o) => {
                    eprintln!(
                        "scripts/pg.sh failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    None
                }
                Err(e) => {
                    eprintln!("cannot run scripts/pg.sh: {e}");
                    None
                }
            }
        })
        .clone()
        .or_else(|| {
            super::unavailable(
                "PostgreSQL (set PRICEHUB_TEST_DATABASE_URL or install the server binaries)",
            );
            None
        })
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub async fn admin_execute(sql: &str) -> Result<(), sqlx::Error> {
    let url = admin_url().expect("PostgreSQL available");
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    // One statement at a time: several in one string would run as one transaction, where
    // CREATE/DROP/ALTER DATABASE are not allowed.
    for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sqlx::raw_sql(stmt).execute(&mut conn).await?;
    }
    conn.close().await?;
    Ok(())
}

/// A new database, empty or cloned from a migrated template.
pub async fn fresh_database(migrated: bool) -> Option<DatabaseUrl> {
    let admin = admin_url()?;
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let name = format!("t_{pid}_{n}");
    if migrated {
        let template = {
            let mut guard = TEMPLATE.lock().await;
            if guard.is_none() {
                let tpl = format!("tpl_{pid}");
                admin_execute(&format!(
                    "DROP DATABASE IF EXISTS {tpl}; CREATE DATABASE {tpl}"
                ))
                .await
                .expect("create template database");
                let url: DatabaseUrl = with_database(&admin, &tpl).parse().unwrap();
                let db = Db::connect(&DbArgs::new(url))
                    .await
                    .expect("connect template");
                db.migrate().await.expect("migrate template");
                db.close().await;
                *guard = Some(tpl);
            }
            guard.clone().unwrap()
        };
        // Cloning needs the template to be idle; retry briefly if another clone is running.
        let mut attempt = 0;
        loop {
            match admin_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    tracing_hint(&e);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create database {name}: {e}"),
            }
        }
    } else {
        admin_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
    }
    Some(with_database(&admin, &name).parse().unwrap())
}

fn tracing_hint(e: &sqlx::Error) {
    if std::env::var_os("PRICEHUB_TEST_VERBOSE").is_some() {
        eprintln!("retrying CREATE DATABASE: {e}");
    }
}
