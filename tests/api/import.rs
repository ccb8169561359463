//! `pricehub import` and `pricehub migrate`: both dump editions into both backends,
//! idempotency, malformed dumps, and adopting a database loaded with `psql < rates.sql`.

use crate::common;

use std::process::Command;

use crate::common::on_both_backends;
use common::{Backend, TestApp, data_dir, fresh_db};
use pricehub::db::Db;
use pricehub::rates::import::import_file;
use pricehub::rates::store::counts;

/// A fingerprint of the rates tables: counts plus sums, so a changed row shows up.
async fn fingerprint(db: &Db) -> (i64, i64, i64, i64, i64) {
    let q = "SELECT (SELECT COUNT(*) FROM regions), (SELECT COUNT(*) FROM ports), \
             (SELECT COUNT(*) FROM prices), (SELECT COALESCE(SUM(price), 0) FROM prices), \
             (SELECT COALESCE(SUM(samples), 0) FROM price_daily)";
    match db {
        Db::Postgres(p) => sqlx::query_as(
            &q.replace("SUM(price)", "SUM(price)::bigint")
                .replace("SUM(samples)", "SUM(samples)::bigint"),
        )
        .fetch_one(p)
        .await
        .unwrap(),
        Db::Sqlite(p) => sqlx::query_as(q).fetch_one(p).await.unwrap(),
    }
}

async fn twice_changes_nothing(backend: Backend) {
    let Some(dir) = data_dir() else { return };
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    let first = import_file(&t.db, &dir.join("rates-2021.sql"))
        .await
        .unwrap();
    assert_eq!(
        (first.regions, first.ports, first.prices),
        (20, 143, 56_689)
    );
    assert_eq!(first.prices_inserted, 56_689);
    assert_eq!(counts(&t.db).await.unwrap(), (20, 143, 56_689));
    let before = fingerprint(&t.db).await;
    assert_eq!(before.4, 56_689, "the derived table counts every price");
    let second = import_file(&t.db, &dir.join("rates-2021.sql"))
        .await
        .unwrap();
    assert_eq!(
        (
            second.regions_written,
            second.ports_written,
            second.prices_inserted
        ),
        (0, 0, 0),
        "{second}"
    );
    assert_eq!(fingerprint(&t.db).await, before);
    // The other edition (no `public.` prefix, January 2016) adds its own year once.
    let third = import_file(&t.db, &dir.join("rates-2016.sql"))
        .await
        .unwrap();
    assert_eq!(
        (third.ports_written, third.prices_inserted),
        (0, 56_689),
        "{third}"
    );
    let after = fingerprint(&t.db).await;
    assert_eq!(after.2, 2 * 56_689);
    let fourth = import_file(&t.db, &dir.join("rates-2016.sql"))
        .await
        .unwrap();
    assert_eq!(fourth.prices_inserted, 0, "{fourth}");
    assert_eq!(fingerprint(&t.db).await, after);
}

on_both_backends!(importing_twice_changes_nothing => twice_changes_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2016_edition_loads_into_an_empty_database() {
    let Some(dir) = data_dir() else { return };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(t) = fresh_db(backend).await else {
            return;
        };
        let r = import_file(&t.db, &dir.join("rates-2016.sql"))
            .await
            .unwrap();
        assert_eq!(
            (r.regions_written, r.ports_written, r.prices_inserted),
            (20, 143, 56_689),
            "{backend:?}"
        );
    }
}

/// Writes a copy of the 2021 dump with one line replaced; returns its path and the line.
fn corrupted_dump(
    dir: &std::path::Path,
    line_no: usize,
    replacement: &str,
) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(dir.join("rates-2021.sql")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[line_no - 1] = replacement;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), lines.join("\n") + "\n").unwrap();
    f
}

async fn malformed_dump_leaves_the_database_as_it_was(backend: Backend) {
    let Some(dir) = data_dir() else { return };
    let Some(t) = fresh_db(backend).await else {
        return;
    };
    import_file(&t.db, &dir.join("rates-2016.sql"))
        .await
        .unwrap();
    let before = fingerprint(&t.db).await;
    // A bad date deep in the prices section.
    let bad = corrupted_dump(&dir, 30_000, "CNGGZ\tEETLL\t2021-02-30\t1200");
    let err = import_file(&t.db, bad.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":30000:") && err.contains("2021-02-30"),
        "{err}"
    );
    assert_eq!(fingerprint(&t.db).await, before);
    // A row the parser accepts but the database refuses (a port whose region is neither in
    // the dump nor in the database) fails inside the transaction: nothing is kept.
    let text = std::fs::read_to_string(dir.join("rates-2021.sql")).unwrap();
    let start = text.find("COPY public.regions").unwrap();
    let end = start + text[start..].find("\\.\n").unwrap() + 3;
    let no_regions = text[..start].to_string() + &text[end..];
    let no_regions = no_regions.replacen(
        "CNCWN\tChiwan\tchina_south_main",
        "CNCWN\tChiwan\tnowhere_region",
        1,
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), no_regions + "CNGGZ\tEETLL\t2021-03-01\t1\n").unwrap();
    let err = import_file(&t.db, f.path()).await.unwrap_err();
    assert!(format!("{err:#}").contains("left as it was"), "{err:#}");
    assert_eq!(fingerprint(&t.db).await, before);
}

on_both_backends!(malformed_dump => malformed_dump_leaves_the_database_as_it_was);

fn pricehub() -> Command {
    let mut c = common::process::pricehub();
    c.env("PRICEHUB_LOG", "warn");
    c
}

/// The original way: `psql < rates.sql` into an empty database, then `pricehub migrate`
/// adopts the tables, builds the derived ones, and the API answers like the original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_adopts_a_database_loaded_with_psql() {
    let Some(dir) = data_dir() else { return };
    let Some(url) = common::pg::fresh_database(false).await else {
        return;
    };
    let psql = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", url.expose(), "-f"])
        .arg(dir.join("rates-2021.sql"))
        .output()
        .expect("psql runs");
    assert!(
        psql.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&psql.stderr)
    );

    let out = pricehub()
        .args(["migrate", "--database-url", url.expose()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("143 ports") && stdout.contains("56689 prices"),
        "{stdout}"
    );
    // A second migrate is a no-op.
    assert!(
        pricehub()
            .args(["migrate", "--database-url", url.expose()])
            .status()
            .unwrap()
            .success()
    );

    // Importing the same dump over it adds nothing.
    let out = pricehub()
        .args(["import", "--database-url", url.expose()])
        .arg(dir.join("rates-2021.sql"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("56689 in file, 0 inserted"), "{stdout}");

    let db = Db::connect(&pricehub::config::DbArgs::new(url.clone()))
        .await
        .unwrap();
    let app = TestApp::start(common::TestDb::new(db, url, None)).await;
    let (s, _, body) = app
        .get_json("/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL")
        .await;
    assert_eq!(s, 200);
    assert_eq!(body["rates"].as_array().unwrap().len(), 31);
    assert_eq!(
        body["rates"][3]["price"], 1155.0,
        "2021-01-28 as the original answered"
    );
    let (s, _, body) = app
        .get_json("/rates?date_from=2021-01-01&date_to=2021-01-05&orig_code=china_main&dest_code=north_europe_main")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        body["rates"][0]["count"], 334,
        "regions resolve on an adopted database"
    );
    app.stop().await;
}

#[test]
fn cli_import_errors_are_clear_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let out = pricehub()
        .args(["import", "--database-url", &db, "/no/such/file.sql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open /no/such/file.sql"), "{err}");

    let bad = dir.path().join("bad.sql");
    std::fs::write(&bad, "COPY public.prices (orig_code, dest_code, day, price) FROM stdin;\nA\tB\tnot-a-day\t1\n\\.\n").unwrap();
    let out = pricehub()
        .args(["import", "--database-url", &db])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.sql:2:") && err.contains("not-a-day"),
        "{err}"
    );

    let out = pricehub().args(["import"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
}
