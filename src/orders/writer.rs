//! Group commit of orders: one task per process takes every order waiting at that moment
//! (up to [`MAX_BATCH`]) and commits them in one transaction that holds the cap ledger.
//!
//! Why: the ledger row must stay locked from the cap check until the commit, so commits
//! are serialised and one order per commit would cap throughput at one fsync per order.
//! Batching amortises the lock and the fsync over every order that arrived meanwhile;
//! the cap check stays exact because each batch decides its orders one by one against
//! the total it read under the lock. Replicas each run a writer; their batches queue on
//! the same row.
//!
//! Within a batch: Idempotency-Keys are claimed first, in key order (so two batches can
//! never wait on each other's keys in opposite orders), then the ledger is locked; a
//! refused order gives its key back (`idempotency::release`); a duplicate key waits for
//! the next batch. A database error fails the whole batch with 503/500 and stores nothing.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use chrono::{SubsecRound, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::fx::{NoRate, RateBook, Rates};
use super::metrics::{outcome, outcome_n, record_btc_total};
use super::money::btc_sats;
use super::problems::{cap_exceeded, no_rate};
use super::service::NewOrder;
use super::store::{self, Order};
use super::view::OrderView;
use crate::db::{Db, Tx};
use crate::http::problem::Problem;
use crate::idempotency::{self, Claim, Key, Outcome};

/// Most orders committed in one transaction.
pub const MAX_BATCH: usize = 256;

pub struct Pending {
    pub req: NewOrder,
    pub key: Option<Key>,
    pub rates: Result<Rates, NoRate>,
    pub reply: oneshot::Sender<Result<Response, Problem>>,
    /// The request's span (with its request id): the writer logs each order's outcome
    /// inside it, so the line carries the id of the request that placed the order.
    pub span: tracing::Span,
}

/// What the writer needs of one order to decide it.
struct Item {
    req: NewOrder,
    key: Option<Key>,
    rates: Result<Rates, NoRate>,
}

/// An order's answer: the response, or the problem that refused it.
type Answer = Result<Response, Problem>;

/// This process's order writer: commits batches of waiting orders (one task, see
/// [`OrderWriter::run`]).
pub struct OrderWriter {
    pub db: Db,
    pub rates: Arc<RateBook>,
    pub cap_sats: i64,
}

impl OrderWriter {
    /// Runs until every sender is gone (the API has stopped and released its state).
    pub async fn run(self, mut rx: mpsc::Receiver<Pending>) {
        let mut carry: Vec<Pending> = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut carry);
            if batch.is_empty() {
                match rx.recv().await {
                    Some(p) => batch.push(p),
                    None => break,
                }
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let mut keys = HashSet::new();
            let mut now = Vec::with_capacity(batch.len());
            for p in batch {
                match &p.key {
                    Some(k) if !keys.insert(k.key.clone()) => carry.push(p),
                    _ => now.push(p),
                }
            }
            self.commit_batch(now).await;
        }
    }

    async fn commit_batch(&self, batch: Vec<Pending>) {
        let size = batch.len();
        let (items, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|p| {
                let item = Item {
                    req: p.req,
                    key: p.key,
                    rates: p.rates,
                };
                (item, (p.reply, p.span))
            })
            .unzip();
        metrics::histogram!("pricehub_orders_batch_size").record(size as f64);
        match self.try_batch(&items).await {
            Ok(results) => {
                for ((reply, span), r) in replies.into_iter().zip(results) {
                    span.in_scope(|| match &r {
                        Ok(resp) => tracing::info!(
                            status = resp.status().as_u16(),
                            batch_size = size,
                            "order answered"
                        ),
                        Err(p) => tracing::info!(
                            status = p.status.as_u16(),
                            batch_size = size,
                            reason = %p,
                            "order refused"
                        ),
                    });
                    let _ = reply.send(r);
                }
            }
            Err(p) => {
                outcome_n("error", items.len());
                for (reply, span) in replies {
                    span.in_scope(|| {
                        tracing::warn!(batch_size = size, error = %p, "order batch failed; nothing stored")
                    });
                    let _ = reply.send(Err(p.clone()));
                }
            }
        }
    }

    async fn try_batch(&self, items: &[Item]) -> Result<Vec<Answer>, Problem> {
        let mut answers: Vec<Option<Answer>> = (0..items.len()).map(|_| None).collect();
        let mut tx = self.db.begin().await?;
        let owned = claim_keys(&mut tx, items, &mut answers).await?;
        let mut total = store::lock_ledger(&mut tx).await?;
        let accepted = self
            .decide(&mut tx, items, &owned, &mut total, &mut answers)
            .await?;
        store_accepted(&mut tx, items, &owned, &accepted, &mut answers).await?;
        if !accepted.is_empty() {
            store::set_ledger(&mut tx, total).await?;
        }
        tx.commit().await?;
        outcome_n("created", accepted.len());
        record_btc_total(total);
        Ok(answers
            .into_iter()
            .map(|o| o.expect("every order has an answer"))
            .collect())
    }

    /// Decides, one by one against the locked `total`, every order not yet answered:
    /// accepted ones are returned (with their index) and added to `total`; a refused one
    /// is answered and gives its key back.
    async fn decide(
        &self,
        tx: &mut Tx,
        items: &[Item],
        owned: &[bool],
        total: &mut i64,
        answers: &mut [Option<Answer>],
    ) -> Result<Vec<(usize, Order)>, Problem> {
        let mut accepted: Vec<(usize, Order)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if answers[i].is_some() {
                continue;
            }
            match self.price(item, *total) {
                Ok(order) => {
                    *total += order.btc_sats;
                    accepted.push((i, order));
                }
                Err(p) => {
                    if owned[i] {
                        idempotency::release(tx, item.key.as_ref().expect("owned")).await?;
                    }
                    answers[i] = Some(Err(p));
                }
            }
        }
        Ok(accepted)
    }

    /// The order `item` makes at its rate, or why it is refused (no rate, or the cap
    /// would be passed with `total` already ordered).
    fn price(&self, item: &Item, total: i64) -> Result<Order, Problem> {
        let rates = match &item.rates {
            Err(why) => {
                outcome("no_rate");
                return Err(no_rate(&self.rates, why.clone()));
            }
            Ok(rates) => rates,
        };
        let req = &item.req;
        let rate = rates.get(req.currency);
        let sats = btc_sats(req.amount, rate);
        if i128::from(total) + sats > i128::from(self.cap_sats) {
            outcome("cap_exceeded");
            return Err(cap_exceeded(self.cap_sats, sats, Some(total)));
        }
        Ok(Order {
            id: Uuid::new_v4(),
            created_at: Utc::now().trunc_subsecs(6),
            currency: req.currency,
            amount: req.amount,
            rate,
            btc_sats: sats as i64,
        })
    }
}

/// Claims the batch's Idempotency-Keys in key order. A replayed or conflicting key
/// answers its order at once; the returned flags mark the keys this batch owns.
async fn claim_keys(
    tx: &mut Tx,
    items: &[Item],
    answers: &mut [Option<Answer>],
) -> Result<Vec<bool>, Problem> {
    let mut owned = vec![false; items.len()];
    let mut keyed: Vec<(usize, &Key)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.key.as_ref().map(|k| (i, k)))
        .collect();
    keyed.sort_by(|(_, a), (_, b)| a.key.cmp(&b.key));
    for (i, key) in keyed {
        match idempotency::claim(tx, key).await {
            Ok(Claim::Owned) => owned[i] = true,
            Ok(Claim::Replay(resp)) => {
                outcome("replayed");
                answers[i] = Some(Ok(resp));
            }
            Err(p) if p.status == StatusCode::CONFLICT => {
                outcome("conflict");
                answers[i] = Some(Err(p));
            }
            Err(p) => return Err(p),
        }
    }
    Ok(owned)
}

/// Inserts the accepted orders, storing each one's answer under its key when it has one.
async fn store_accepted(
    tx: &mut Tx,
    items: &[Item],
    owned: &[bool],
    accepted: &[(usize, Order)],
    answers: &mut [Option<Answer>],
) -> Result<(), Problem> {
    for (i, order) in accepted {
        store::insert(tx, order).await?;
        let stored = Outcome::json(StatusCode::CREATED, &OrderView::from(order));
        if owned[*i] {
            idempotency::store(tx, items[*i].key.as_ref().expect("owned"), &stored).await?;
        }
        answers[*i] = Some(Ok(stored.into_response()));
    }
    Ok(())
}
