//! The cursor format of `GET /orders`: the keyset position (created_at, id) of the last
//! order of a page, in the shared opaque [`Cursor`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::store::Order;
use crate::http::params::Cursor;

/// Orders are listed by (created_at, id): the cursor holds microseconds and the UUID.
pub fn cursor_of(o: &Order) -> Cursor {
    Cursor::new(o.created_at.timestamp_micros(), o.id.simple())
}

/// The keyset position of a cursor, if it is one of an order list.
pub fn position(c: &Cursor) -> Option<(DateTime<Utc>, Uuid)> {
    if c.time < 0 || c.id.len() != 32 {
        return None;
    }
    let t = DateTime::from_timestamp_micros(c.time)?;
    Some((t, Uuid::try_parse(&c.id).ok()?))
}
