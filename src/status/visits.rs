//! Visit counting for the status page.
//!
//! A visitor is the client address (see [`crate::http::client_ip`]) turned into an
//! HMAC-SHA256 under a secret key, so the database never holds a raw IP and the ids
//! cannot be reversed by hashing the address space. The key is `--visit-key` when set,
//! otherwise 32 random bytes generated once and kept in `status_keys` (first writer
//! wins), so every replica derives the same id for the same visitor.
//!
//! Visits are counted by atomic upserts (`INSERT … ON CONFLICT DO UPDATE … RETURNING`):
//! there is no read-modify-write, so concurrent visits are never lost and never collide
//! on the unique key. The number of distinct visitors is kept beside it in the same
//! transaction (PostgreSQL: a data-modifying CTE; SQLite: a trigger on insert). The
//! visits waiting at one moment are committed together (see [`Visits`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::{OnceCell, mpsc, oneshot};

use crate::config::Secret;
use crate::db::Db;

const KEY_NAME: &str = "visitor-hmac";

/// Most visits committed by one statement.
const MAX_BATCH: usize = 1024;

/// The counts the page shows after a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct VisitCounts {
    /// Visits of this page by the asking visitor, this one included.
    #[schema(example = 3)]
    pub yours: i64,
    /// Distinct visitors so far.
    #[schema(example = 17)]
    pub visitors: i64,
}

/// Why a visit was not counted (shared by every visit of a failed batch).
pub type VisitError = Arc<sqlx::Error>;

type Visitor = [u8; 32];

struct Pending {
    visitor: Visitor,
    reply: oneshot::Sender<Result<VisitCounts, VisitError>>,
}

/// The visit counter of one process: [`Visits::record`] hands each visit to a writer
/// task, which commits every visit waiting at that moment in one statement (group
/// commit, like the orders' writer). Under load this turns thousands of single-row
/// transactions that queue on the same rows into a few hundred batches; each caller
/// still gets the exact count its own visit produced. The writer, not the request,
/// commits and counts, so a client that hangs up mid-request never leaves a visit
/// stored but uncounted in `pricehub_status_visits_total`.
pub struct Visits {
    configured: Option<Vec<u8>>,
    key: OnceCell<Vec<u8>>,
    db: Db,
    writer: mpsc::Sender<Pending>,
}

impl Visits {
    /// Starts the writer task; it ends when this `Visits` is dropped.
    pub fn start(db: &Db, configured: Option<&Secret>) -> Visits {
        let (writer, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(db.clone(), rx));
        Visits {
            configured: configured.map(|s| s.expose().as_bytes().to_vec()),
            key: OnceCell::new(),
            db: db.clone(),
            writer,
        }
    }

    /// The HMAC key: configured, or loaded from (and on first use stored in) the
    /// database. Retried on the next visit when the database cannot be reached.
    async fn key(&self) -> Result<&[u8], sqlx::Error> {
        if let Some(k) = &self.configured {
            return Ok(k);
        }
        self.key
            .get_or_try_init(|| async {
                let mut fresh = vec![0u8; 32];
                rand::rng().fill_bytes(&mut fresh);
                let insert = "INSERT INTO status_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
                let select = "SELECT key FROM status_keys WHERE name = $1";
                crate::db_run!(&self.db, |pool| {
                    sqlx::query(insert).bind(KEY_NAME).bind(&fresh).execute(pool).await?;
                    sqlx::query_scalar(select).bind(KEY_NAME).fetch_one(pool).await
                })
            })
            .await
            .map(Vec::as_slice)
    }

    /// The stored id of a visitor: HMAC-SHA256(key, address).
    pub fn visitor_id(key: &[u8], ip: IpAddr) -> Visitor {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(ip.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Counts one visit of `ip` and returns the counts after it.
    pub async fn record(&self, ip: IpAddr) -> Result<VisitCounts, VisitError> {
        let visitor = Self::visitor_id(self.key().await?, ip);
        let (reply, answer) = oneshot::channel();
        let gone = || Arc::new(sqlx::Error::PoolClosed);
        self.writer
            .send(Pending { visitor, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The writer: takes every visit waiting (up to [`MAX_BATCH`]), commits them in one
/// statement, answers each. A database error fails the batch and stores none of it.
async fn write_batches(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut visits: BTreeMap<Visitor, i64> = BTreeMap::new();
        for p in &batch {
            *visits.entry(p.visitor).or_default() += 1;
        }
        match commit(&db, &visits).await {
            Ok((totals, visitors)) => {
                metrics::counter!("pricehub_status_visits_total").increment(batch.len() as u64);
                // The k-th of a visitor's n visits in this batch is visit number
                // total - n + k of that visitor: arrival order within the batch.
                let mut seen: BTreeMap<Visitor, i64> = BTreeMap::new();
                for p in batch.drain(..) {
                    let k = seen.entry(p.visitor).or_default();
                    *k += 1;
                    let yours = totals[&p.visitor] - visits[&p.visitor] + *k;
                    let _ = p.reply.send(Ok(VisitCounts { yours, visitors }));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Adds `visits` (visitor -> visits in this batch) in one transaction; returns each
/// visitor's total after it and the number of distinct visitors.
async fn commit(
    db: &Db,
    visits: &BTreeMap<Visitor, i64>,
) -> Result<(BTreeMap<Visitor, i64>, i64), sqlx::Error> {
    let mut totals = BTreeMap::new();
    let visitors = match db {
        Db::Postgres(p) => {
            // One statement, so one transaction. A visitor is new when its total equals
            // this batch's visits (a stored row has at least one). Rows are written in
            // visitor order, then the total row: two replicas' batches take their locks
            // in the same order and cannot deadlock. `quick` turns off the wait for the
            // WAL flush for this transaction only: a PostgreSQL crash may lose the last
            // few hundred milliseconds of visits (never a torn or double count: the
            // commit is still atomic), and visits do not wait for an fsync. Orders,
            // prices and batches keep full durability.
            let ids: Vec<Vec<u8>> = visits.keys().map(|v| v.to_vec()).collect();
            let counts: Vec<i64> = visits.values().copied().collect();
            let rows: Vec<(Vec<u8>, i64, i64, Option<i32>)> = sqlx::query_as(
                "WITH b AS (
                    SELECT * FROM unnest($1::bytea[], $2::bigint[]) AS b(visitor, n)
                 ), v AS (
                    INSERT INTO status_visitors AS s (visitor, visits)
                    SELECT visitor, n FROM b ORDER BY visitor
                    ON CONFLICT (visitor) DO UPDATE
                        SET visits = s.visits + EXCLUDED.visits, last_visit = now()
                    RETURNING s.visitor, s.visits
                 ), fresh AS (
                    SELECT count(*) AS n FROM v JOIN b USING (visitor) WHERE v.visits = b.n
                 ), t AS (
                    UPDATE status_totals SET visitors = visitors + (SELECT n FROM fresh)
                    WHERE id AND (SELECT n FROM fresh) > 0
                    RETURNING visitors
                 ), quick AS (
                    SELECT set_config('synchronous_commit', 'off', true)
                 )
                 SELECT v.visitor, v.visits,
                        COALESCE((SELECT visitors FROM t), (SELECT visitors FROM status_totals WHERE id)),
                        (SELECT 1 FROM quick)
                 FROM v",
            )
            .bind(&ids)
            .bind(&counts)
            .fetch_all(p)
            .await?;
            let mut visitors = 0;
            for (id, total, all, _) in rows {
                let id: Visitor = id.try_into().map_err(|_| {
                    sqlx::Error::Protocol("status_visitors.visitor is not 32 bytes".into())
                })?;
                totals.insert(id, total);
                visitors = all;
            }
            visitors
        }
        Db::Sqlite(p) => {
            // One transaction; the upsert fires the trigger that keeps the total. SQLite
            // computes RETURNING before AFTER triggers run, so the total is read last.
            let mut tx = p.begin().await?;
            for (id, n) in visits {
                let total: i64 = sqlx::query_scalar(
                    "INSERT INTO status_visitors (visitor, visits) VALUES ($1, $2)
                     ON CONFLICT (visitor) DO UPDATE SET visits = visits + excluded.visits,
                        last_visit = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     RETURNING visits",
                )
                .bind(&id[..])
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
                totals.insert(*id, total);
            }
            let visitors: i64 =
                sqlx::query_scalar("SELECT visitors FROM status_totals WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            visitors
        }
    };
    if totals.len() != visits.len() {
        return Err(sqlx::Error::Protocol(format!(
            "visit batch: {} visitors written, {} returned",
            visits.len(),
            totals.len()
        )));
    }
    Ok((totals, visitors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_and_never_the_address() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = Visits::visitor_id(b"key one", ip);
        assert_eq!(a, Visits::visitor_id(b"key one", ip));
        assert_ne!(a, Visits::visitor_id(b"key two", ip));
        assert_ne!(
            a,
            Visits::visitor_id(b"key one", "203.0.113.8".parse().unwrap())
        );
        assert!(!a.windows(4).any(|w| w == [203, 0, 113, 7]));
    }
}
