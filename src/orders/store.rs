//! Order storage on both backends.
//!
//! PostgreSQL keeps exact `numeric` columns (amount, rate, btc_amount). SQLite has no
//! exact decimal type, so it keeps integers where the unit is fixed — `amount_cents`,
//! `btc_sats` — and the rate as canonical decimal text; nothing is ever a REAL.
//!
//! The cap is a one-row ledger (`btc_ledger.total_sats`) locked and updated in the same
//! transaction as the inserts (see `orders::writer`). While one transaction holds the
//! row, every other writer — in this process or another replica — waits for it and then
//! reads the committed total, so no interleaving can take the total past the cap.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::money::{Amount, Currency, Rate, sats_to_btc};
use crate::db::{Db, Tx};

/// A stored order.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub currency: Currency,
    pub amount: Amount,
    pub rate: Rate,
    pub btc_sats: i64,
}

impl Order {
    pub fn btc_amount(&self) -> Decimal {
        sats_to_btc(self.btc_sats)
    }
}

/// SQLite's text form of a time: fixed width, so text order is time order.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_sqlite_time(s: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn decode<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, sqlx::Error> {
    r.map_err(|e| sqlx::Error::Decode(e.to_string().into()))
}

pub async fn insert(tx: &mut Tx, o: &Order) -> Result<(), sqlx::Error> {
    // Two arms: the money columns differ (PostgreSQL NUMERIC and timestamptz; SQLite
    // integer cents and satoshis, text rate and time), so the bindings differ too.
    match tx {
        Tx::Postgres(t) => {
            sqlx::query(
                "INSERT INTO orders (id, created_at, currency, amount, rate, btc_amount) \
                 VALUES ($1::uuid, $2, $3, $4, $5, $6)",
            )
            .bind(o.id.to_string())
            .bind(o.created_at)
            .bind(o.currency.code())
            .bind(o.amount.to_decimal())
            .bind(o.rate.value())
            .bind(o.btc_amount())
            .execute(&mut **t)
            .await?;
        }
        Tx::Sqlite(t) => {
            sqlx::query(
                "INSERT INTO orders (id, created_at, currency, amount_cents, rate, btc_sats) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(o.id.to_string())
            .bind(sqlite_time(o.created_at))
            .bind(o.currency.code())
            .bind(o.amount.cents())
            .bind(o.rate.value().to_string())
            .bind(o.btc_sats)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Locks the ledger row for this transaction and reads the total (satoshis). A write,
/// not a `SELECT … FOR UPDATE`, so that SQLite takes its write lock here too instead of
/// upgrading a read later (which can fail rather than wait).
pub async fn lock_ledger(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    let q = "UPDATE btc_ledger SET total_sats = total_sats WHERE id = 1 RETURNING total_sats";
    crate::tx_run!(tx, |t| sqlx::query_scalar(q).fetch_one(&mut **t).await)
}

/// Writes the new total (the row is locked by [`lock_ledger`] in the same transaction).
pub async fn set_ledger(tx: &mut Tx, total_sats: i64) -> Result<(), sqlx::Error> {
    let q = "UPDATE btc_ledger SET total_sats = $1 WHERE id = 1";
    crate::tx_run!(tx, |t| {
        sqlx::query(q).bind(total_sats).execute(&mut **t).await?;
    });
    Ok(())
}

/// Total BTC ordered so far, in satoshis.
pub async fn ledger_total(db: &Db) -> Result<i64, sqlx::Error> {
    let q = "SELECT total_sats FROM btc_ledger WHERE id = 1";
    crate::db_run!(db, |p| sqlx::query_scalar(q).fetch_one(p).await)
}

/// Newest first, strictly after `after` (a `(created_at, id)` keyset position).
/// On PostgreSQL the columns are qualified: a bare `id` in ORDER BY would name the
/// output column `id::text` and sort text instead of walking the index.
pub async fn list(
    db: &Db,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    // Two arms: the column types differ (see `insert`), so the rows decode differently.
    match db {
        Db::Postgres(p) => {
            type Row = (String, DateTime<Utc>, String, Decimal, Decimal, Decimal);
            let rows: Vec<Row> = match after {
                Some((t, id)) => sqlx::query_as(
                    "SELECT o.id::text, o.created_at, o.currency, o.amount, o.rate, o.btc_amount FROM orders o \
                         WHERE (o.created_at, o.id) < ($1, $2::uuid) \
                         ORDER BY o.created_at DESC, o.id DESC LIMIT $3",
                )
                .bind(t)
                .bind(id.to_string())
                .bind(limit)
                .fetch_all(p)
                .await?,
                None => sqlx::query_as(
                    "SELECT o.id::text, o.created_at, o.currency, o.amount, o.rate, o.btc_amount FROM orders o \
                         ORDER BY o.created_at DESC, o.id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(p)
                .await?,
            };
            rows.into_iter()
                .map(|(id, created_at, currency, amount, rate, btc)| {
                    let cents = i64::try_from(amount * Decimal::ONE_HUNDRED);
                    let sats = i64::try_from(btc * Decimal::from(super::money::SATS_PER_BTC));
                    Ok(Order {
                        id: decode(Uuid::parse_str(&id))?,
                        created_at,
                        currency: decode(currency.parse())?,
                        amount: decode(cents.map_err(|e| e.to_string()).and_then(|c| {
                            Amount::from_cents(c).ok_or_else(|| "amount out of range".to_string())
                        }))?,
                        rate: decode(Rate::new(rate))?,
                        btc_sats: decode(sats)?,
                    })
                })
                .collect()
        }
        Db::Sqlite(p) => {
            type Row = (String, String, String, i64, String, i64);
            let rows: Vec<Row> =
                match after {
                    Some((t, id)) => sqlx::query_as(
                        "SELECT id, created_at, currency, amount_cents, rate, btc_sats FROM orders \
                         WHERE (created_at, id) < (?1, ?2) \
                         ORDER BY created_at DESC, id DESC LIMIT ?3",
                    )
                    .bind(sqlite_time(t))
                    .bind(id.to_string())
                    .bind(limit)
                    .fetch_all(p)
                    .await?,
                    None => sqlx::query_as(
                        "SELECT id, created_at, currency, amount_cents, rate, btc_sats FROM orders \
                         ORDER BY created_at DESC, id DESC LIMIT ?1",
                    )
                    .bind(limit)
                    .fetch_all(p)
                    .await?,
                };
            rows.into_iter()
                .map(|(id, created_at, currency, cents, rate, sats)| {
                    Ok(Order {
                        id: decode(Uuid::parse_str(&id))?,
                        created_at: parse_sqlite_time(&created_at)?,
                        currency: decode(currency.parse())?,
                        amount: decode(Amount::from_cents(cents).ok_or("amount out of range"))?,
                        rate: decode(
                            super::money::parse_decimal(&rate)
                                .ok_or_else(|| format!("bad rate {rate:?}"))
                                .and_then(Rate::new),
                        )?,
                        btc_sats: sats,
                    })
                })
                .collect()
        }
    }
}
