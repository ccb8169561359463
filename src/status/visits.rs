//! Visit counting for the status page.
//!
//! A visitor is the client address (see [`crate::http::client_ip`]) turned into an
//! HMAC-SHA256 under a secret key, so the database never holds a raw IP and the ids
//! cannot be reversed by hashing the address space. The key is `--visit-key` when set,
//! otherwise 32 random bytes generated once and kept in `status_keys` (first writer
//! wins), so every replica derives the same id for the same visitor.
//!
//! A visit is one atomic upsert (`INSERT … ON CONFLICT DO UPDATE … RETURNING`): there
//! is no read-modify-write, so concurrent visits are never lost and never collide on
//! the unique key. The number of distinct visitors is kept beside it by the same
//! statement (PostgreSQL: a data-modifying CTE; SQLite: a trigger on insert).

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::OnceCell;

use crate::config::Secret;
use crate::db::Db;

const KEY_NAME: &str = "visitor-hmac";

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

pub struct Visits {
    configured: Option<Vec<u8>>,
    key: OnceCell<Vec<u8>>,
}

impl Visits {
    pub fn new(configured: Option<&Secret>) -> Visits {
        Visits {
            configured: configured.map(|s| s.expose().as_bytes().to_vec()),
            key: OnceCell::new(),
        }
    }

    /// The HMAC key: configured, or loaded from (and on first use stored in) the
    /// database. Retried on the next visit when the database cannot be reached.
    async fn key(&self, db: &Db) -> Result<&[u8], sqlx::Error> {
        if let Some(k) = &self.configured {
            return Ok(k);
        }
        self.key
            .get_or_try_init(|| async {
                let mut fresh = vec![0u8; 32];
                rand::rng().fill_bytes(&mut fresh);
                let insert = "INSERT INTO status_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
                let select = "SELECT key FROM status_keys WHERE name = $1";
                match db {
                    Db::Postgres(p) => {
                        sqlx::query(insert).bind(KEY_NAME).bind(&fresh).execute(p).await?;
                        sqlx::query_scalar(select).bind(KEY_NAME).fetch_one(p).await
                    }
                    Db::Sqlite(p) => {
                        sqlx::query(insert).bind(KEY_NAME).bind(&fresh).execute(p).await?;
                        sqlx::query_scalar(select).bind(KEY_NAME).fetch_one(p).await
                    }
                }
            })
            .await
            .map(Vec::as_slice)
    }

    /// The stored id of a visitor: HMAC-SHA256(key, address).
    pub fn visitor_id(key: &[u8], ip: IpAddr) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(ip.to_string().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Counts one visit of `ip` and returns the counts after it.
    pub async fn record(&self, db: &Db, ip: IpAddr) -> Result<VisitCounts, sqlx::Error> {
        let id = Self::visitor_id(self.key(db).await?, ip);
        let counts = match db {
            Db::Postgres(p) => {
                // One statement, so one transaction; `quick` turns off the wait for the WAL
                // flush for this transaction only. A visit counter may lose its last few
                // hundred milliseconds of visits in a PostgreSQL crash (never a torn or
                // double count: the commit is still atomic), and in exchange each visit
                // does not wait for an fsync. Orders, prices and batches keep full
                // durability.
                let (yours, visitors, _): (i64, i64, Option<i32>) = sqlx::query_as(
                    "WITH v AS (
                        INSERT INTO status_visitors AS s (visitor, visits) VALUES ($1, 1)
                        ON CONFLICT (visitor) DO UPDATE SET visits = s.visits + 1, last_visit = now()
                        RETURNING s.visits
                     ), t AS (
                        UPDATE status_totals SET visitors = visitors + 1
                        WHERE id AND (SELECT visits FROM v) = 1
                        RETURNING visitors
                     ), quick AS (
                        SELECT set_config('synchronous_commit', 'off', true)
                     )
                     SELECT (SELECT visits FROM v),
                            COALESCE((SELECT visitors FROM t), (SELECT visitors FROM status_totals WHERE id)),
                            (SELECT 1 FROM quick)",
                )
                .bind(&id[..])
                .fetch_one(p)
                .await?;
                VisitCounts { yours, visitors }
            }
            Db::Sqlite(p) => {
                // The upsert fires the trigger that keeps the total; SQLite computes
                // RETURNING before AFTER triggers run, so the total is read after it.
                let mut conn = p.acquire().await?;
                let yours: i64 = sqlx::query_scalar(
                    "INSERT INTO status_visitors (visitor, visits) VALUES ($1, 1)
                     ON CONFLICT (visitor) DO UPDATE SET visits = visits + 1,
                        last_visit = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                     RETURNING visits",
                )
                .bind(&id[..])
                .fetch_one(&mut *conn)
                .await?;
                let visitors: i64 =
                    sqlx::query_scalar("SELECT visitors FROM status_totals WHERE id = 1")
                        .fetch_one(&mut *conn)
                        .await?;
                VisitCounts { yours, visitors }
            }
        };
        metrics::counter!("pricehub_status_visits_total").increment(1);
        Ok(counts)
    }
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
