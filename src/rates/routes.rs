//! `GET /rates`.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::{DayRate, query};
use crate::app::AppState;
use crate::http::problem::{Problem, ProblemBody};

#[derive(Serialize, ToSchema)]
pub struct RatesResponse {
    /// One entry per day from `date_to` back to `date_from`.
    pub rates: Vec<DayRate>,
}

/// Average daily price between two locations.
///
/// `orig_code` and `dest_code` are each a port code (e.g. `CNSGH`) or a region slug
/// (e.g. `north_europe_main`); a region means every port in it and in all its descendant
/// regions. The answer has one entry per day, newest first. `price` is the average of all
/// prices that day and is null when fewer than 3 exist; `count` is null on days without
/// any price.
#[utoipa::path(get, path = "/rates", tag = "rates",
    params(
        ("date_from" = chrono::NaiveDate, Query, description = "First day, YYYY-MM-DD", example = "2021-01-01"),
        ("date_to" = chrono::NaiveDate, Query, description = "Last day, YYYY-MM-DD (inclusive); the range may span at most --rates-max-days days (default 3660)", example = "2021-01-31"),
        ("orig_code" = String, Query, description = "Origin port code or region slug", example = "CNGGZ",
            min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$"),
        ("dest_code" = String, Query, description = "Destination port code or region slug", example = "EETLL",
            min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$"),
    ),
    responses(
        (status = 200, description = "Daily rates", body = RatesResponse),
        (status = 400, description = "A parameter is missing, repeated or malformed (`missing-parameter`, `duplicate-parameter`, `invalid-date`, `invalid-code`), date_from is after date_to (`invalid-range`) or the range is too long (`range-too-long`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown port or region (`unknown-location`)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable (`unavailable`)", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_rates(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RatesResponse>, Problem> {
    let q = query::parse(raw.as_deref(), state.http.rates_max_days)?;
    Ok(Json(RatesResponse {
        rates: super::answer(&state.rates, &q).await?,
    }))
}
