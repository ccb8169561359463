//! Test harness: real servers, fresh databases, the reference data.
//!
//! PostgreSQL: `PRICEHUB_TEST_DATABASE_URL` (an admin URL of a throw-away server) when set,
//! otherwise a server started here from the local binaries with `scripts/pg.sh`. Each test
//! gets its own database cloned from a migrated template. When PostgreSQL cannot be had the
//! test says so loudly and, under CI (`CI=true`), fails.
#![allow(dead_code)]

pub mod browser;
pub mod pg;
pub mod process;
pub mod redis;

use std::time::Duration;

use pricehub::app::{RunningApi, start_api};
use pricehub::config::{DatabaseUrl, DbArgs, HttpArgs};
use pricehub::db::Db;
use tokio_util::sync::CancellationToken;

/// The routes the API documents: the paths of its OpenAPI document (every route is
/// registered through it, so this is also every route the router serves).
pub fn documented_routes() -> Vec<String> {
    pricehub::http::openapi_document()["paths"]
        .as_object()
        .expect("the OpenAPI document has paths")
        .keys()
        .cloned()
        .collect()
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub use pricehub::testing::{data_dir, unavailable};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each `async fn(Backend)` as two tests, `NAME::sqlite` and `NAME::postgres`:
/// `on_both_backends!(reference_vectors => vectors);` defines
/// `reference_vectors::sqlite` and `reference_vectors::postgres`, both calling
/// `vectors`. `cargo test --test api postgres` runs every PostgreSQL half.
macro_rules! on_both_backends {
    ($($name:ident => $test:ident),* $(,)?) => {$(
        mod $name {
            use $crate::common::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$test(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$test(Backend::Postgres).await;
            }
        }
    )*};
}
pub(crate) use on_both_backends;

/// A fresh, empty database of the given backend (not migrated). `None` when unavailable
/// (already reported).
pub async fn fresh_database_url(
    backend: Backend,
) -> Option<(DatabaseUrl, Option<tempfile::TempDir>)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = DatabaseUrl::sqlite_file(&dir.path().join("test.db"));
            Some((url, Some(dir)))
        }
        Backend::Postgres => pg::fresh_database(false).await.map(|u| (u, None)),
    }
}

/// A fresh, migrated database.
pub async fn fresh_db(backend: Backend) -> Option<TestDb> {
    let (url, dir) = match backend {
        Backend::Sqlite => fresh_database_url(backend).await?,
        Backend::Postgres => (pg::fresh_database(true).await?, None),
    };
    let db = Db::connect(&DbArgs::new(url.clone()))
        .await
        .expect("connect to test database");
    db.migrate().await.expect("migrate test database");
    Some(TestDb { db, url, _dir: dir })
}

pub struct TestDb {
    pub db: Db,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new(db: Db, url: DatabaseUrl, dir: Option<tempfile::TempDir>) -> TestDb {
        TestDb { db, url, _dir: dir }
    }
}

/// The API running in this process on 127.0.0.1:0.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub api: Option<RunningApi>,
    pub db: TestDb,
}

/// How a [`TestApp`] is started: `TestApp::on(Backend::Postgres).http(h).with_rates_2021().start()`.
/// `start` is `None` when the backend or the reference data is unavailable (already
/// reported; a failure under CI).
pub struct TestAppBuilder {
    backend: Backend,
    http: HttpArgs,
    rates_2021: bool,
}

impl TestAppBuilder {
    /// The API's settings (default: `HttpArgs::default()`).
    pub fn http(mut self, http: HttpArgs) -> Self {
        self.http = http;
        self
    }

    /// Imports `rates-2021.sql` into the fresh database before the API starts.
    pub fn with_rates_2021(mut self) -> Self {
        self.rates_2021 = true;
        self
    }

    pub async fn start(self) -> Option<TestApp> {
        let db = fresh_db(self.backend).await?;
        if self.rates_2021 && !import_2021(&db.db).await {
            return None;
        }
        Some(TestApp::start_with(db, self.http).await)
    }
}

/// A request being built against a [`TestApp`]: `app.post("/orders").json(&v).key(k).send()`.
pub struct Call {
    req: reqwest::RequestBuilder,
}

impl Call {
    pub fn json(self, body: &serde_json::Value) -> Self {
        Call {
            req: self.req.json(body),
        }
    }

    /// A raw body with its content type.
    pub fn body(self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        Call {
            req: self.req.header("content-type", content_type).body(body),
        }
    }

    pub fn bearer(self, token: &str) -> Self {
        Call {
            req: self.req.bearer_auth(token),
        }
    }

    /// `Idempotency-Key`, when given.
    pub fn key(self, key: Option<&str>) -> Self {
        match key {
            Some(k) => self.header("Idempotency-Key", k),
            None => self,
        }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        Call {
            req: self.req.header(name, value),
        }
    }

    pub async fn send(self) -> Answer {
        let resp = self.req.send().await.expect("request sent");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            bytes: resp.bytes().await.expect("body read").to_vec(),
        }
    }
}

/// A whole answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The body as JSON; panics, showing the body, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {:.300}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// (status, headers, JSON body): what most assertions take apart.
    pub fn parts(self) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let body = self.json();
        (self.status, self.headers, body)
    }
}

impl TestApp {
    /// Starts building an API on a fresh database of `backend`.
    pub fn on(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            http: HttpArgs::default(),
            rates_2021: false,
        }
    }

    /// A POST to `path`, to be finished with [`Call`]'s methods.
    pub fn post(&self, path: &str) -> Call {
        Call {
            req: self.client.post(self.url(path)),
        }
    }

    pub async fn start(db: TestDb) -> TestApp {
        Self::start_with(db, HttpArgs::default()).await
    }

    pub async fn start_with(db: TestDb, mut http: HttpArgs) -> TestApp {
        http.listen = "127.0.0.1:0".parse().unwrap();
        let api = start_api(db.db.clone(), http, CancellationToken::new())
            .await
            .expect("start API");
        TestApp {
            base: format!("http://{}", api.addr),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            api: Some(api),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// GET returning (status, content-type, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, String, serde_json::Value) {
        let resp = self.get(path).await;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {text:.300}"));
        (status, ct, body)
    }

    pub async fn stop(mut self) {
        if let Some(api) = self.api.take() {
            api.stop().await.expect("clean stop");
        }
    }

    /// Stops the API but keeps its database (and its temporary directory) for a restart.
    pub async fn stop_keeping_db(mut self) -> TestDb {
        if let Some(api) = self.api.take() {
            api.stop().await.expect("clean stop");
        }
        self.db
    }
}

/// Imports the 2021 reference dump into a database.
pub async fn import_2021(db: &Db) -> bool {
    let Some(dir) = data_dir() else { return false };
    pricehub::rates::import::import_file(db, &dir.join("rates-2021.sql"))
        .await
        .expect("import rates-2021.sql");
    true
}

/// Rows in `prices` (what a batch test compares before and after).
pub async fn price_count(db: &Db) -> i64 {
    pricehub::db_run!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM prices")
        .fetch_one(p)
        .await
        .unwrap())
}
