//! Per-client rate limiting of the order routes.
//!
//! A client is its `X-Api-Key` (hashed: keys never sit in memory maps or Redis as
//! given) or else its IP address; forwarded addresses are believed only when the peer is
//! a configured trusted proxy (see [`crate::http::client_ip`]). The limit is a GCRA
//! (generic cell rate algorithm): N requests per minute with a burst of N. In memory it is governor's keyed limiter; with Redis it is
//! one atomic Lua script per request using Redis's clock, so every replica enforces the
//! same limit. No client identifier is ever a metric label.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::redis::Redis;
use crate::http::client_ip::client_ip;

/// Who is asking, as far as limits go.
pub fn client_id(headers: &HeaderMap, peer: Option<SocketAddr>, trusted: &[IpNet]) -> String {
    if let Some(key) = headers
        .get("x-api-key")
        .map(|v| v.as_bytes())
        .filter(|k| !k.is_empty())
    {
        let h = Sha256::digest(key);
        return format!("k:{:x}", h)[..34].to_string();
    }
    let Some(peer) = peer.map(|p| p.ip()) else {
        return "ip:unknown".into();
    };
    format!("ip:{}", client_ip(headers, peer, trusted))
}

/// The limiter: in memory or shared through Redis, or off.
pub enum Limiter {
    Off,
    Memory {
        limiter: DefaultKeyedRateLimiter<String>,
    },
    Redis {
        redis: Redis,
        per_minute: u32,
        /// Used while Redis cannot be reached, so limits degrade to per replica.
        fallback: DefaultKeyedRateLimiter<String>,
    },
}

/// The decision for one request.
pub enum Decision {
    Allow,
    Deny { retry_after: Duration },
}

impl Limiter {
    pub fn new(per_minute: u32, redis: Option<Redis>) -> Limiter {
        let Some(n) = NonZeroU32::new(per_minute) else {
            return Limiter::Off;
        };
        let memory = || RateLimiter::keyed(Quota::per_minute(n));
        match redis {
            None => Limiter::Memory { limiter: memory() },
            Some(redis) => Limiter::Redis {
                redis,
                per_minute,
                fallback: memory(),
            },
        }
    }

    fn check_memory(limiter: &DefaultKeyedRateLimiter<String>, client: &str) -> Decision {
        match limiter.check_key(&client.to_string()) {
            Ok(()) => Decision::Allow,
            Err(not_until) => Decision::Deny {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    pub async fn check(&self, client: &str) -> Decision {
        match self {
            Limiter::Off => Decision::Allow,
            Limiter::Memory { limiter } => Self::check_memory(limiter, client),
            Limiter::Redis {
                redis,
                per_minute,
                fallback,
            } => {
                let interval_us = 60_000_000u64 / u64::from(*per_minute);
                let tolerance_us = interval_us * u64::from(per_minute - 1);
                let mut conn = redis.conn.clone();
                let res: redis::RedisResult<(i64, i64)> = GCRA
                    .key(redis.key(&format!("rl:{client}")))
                    .arg(interval_us)
                    .arg(tolerance_us)
                    .invoke_async(&mut conn)
                    .await;
                match res {
                    Ok((1, _)) => Decision::Allow,
                    Ok((_, wait_us)) => Decision::Deny {
                        retry_after: Duration::from_micros(wait_us.max(0) as u64),
                    },
                    Err(e) => {
                        metrics::counter!("pricehub_orders_rate_limit_errors_total").increment(1);
                        tracing::warn!(error = %e, "rate limiting through Redis failed; limiting in memory");
                        Self::check_memory(fallback, client)
                    }
                }
            }
        }
    }

    /// Forgets clients whose limit has fully recovered (bounded memory).
    pub fn shrink(&self) {
        match self {
            Limiter::Memory { limiter }
            | Limiter::Redis {
                fallback: limiter, ..
            } => {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            Limiter::Off => {}
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Limiter::Off => "off",
            Limiter::Memory { .. } => "memory",
            Limiter::Redis { .. } => "redis",
        }
    }
}

/// GCRA in one atomic step. KEYS[1] = the client's key; ARGV[1] = emission interval T
/// (µs); ARGV[2] = burst tolerance τ = T·(N−1) (µs). The key holds the theoretical
/// arrival time (TAT). Time comes from Redis so replicas' clocks do not matter.
/// Returns {1, 0} when allowed, {0, µs until allowed} when not.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"#,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_hashed() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "secret-key".parse().unwrap());
        let id = client_id(&h, None, &[]);
        assert!(id.starts_with("k:") && !id.contains("secret"));
    }

    #[test]
    fn memory_limiter_denies_after_the_burst() {
        let l = Limiter::new(3, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..3 {
                assert!(matches!(l.check("a").await, Decision::Allow));
            }
            match l.check("a").await {
                Decision::Deny { retry_after } => assert!(retry_after > Duration::ZERO),
                Decision::Allow => panic!("fourth request allowed"),
            }
            assert!(matches!(l.check("b").await, Decision::Allow));
        });
    }
}
