//! The optional Redis connection shared by the rate cache and the rate limiter, so that
//! several API replicas price identically and hold one request limit per client.

use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A multiplexed, self-reconnecting connection and the key prefix of this deployment.
#[derive(Clone)]
pub struct Redis {
    pub conn: ConnectionManager,
    pub prefix: String,
}

/// What `/readyz` reports about Redis.
#[derive(Debug, serde::Serialize)]
pub struct RedisHealth {
    pub reachable: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

/// `redis://user:***@host:port/db`: the URL without its password, for logs.
pub fn redact(url: &str) -> String {
    crate::config::redact_url(url)
}

impl Redis {
    /// Connects (failing start-up with a clear message when Redis is unreachable);
    /// afterwards the manager reconnects by itself and each command times out quickly.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Redis> {
        let client = redis::Client::open(url)
            .with_context(|| format!("invalid Redis URL {}", redact(url)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .with_context(|| format!("cannot connect to Redis at {}", redact(url)))?;
        Ok(Redis {
            conn,
            prefix: prefix.to_string(),
        })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    pub async fn health(&self) -> RedisHealth {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        match pong {
            Ok(_) => RedisHealth {
                reachable: true,
                latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
                error: None,
            },
            Err(e) => RedisHealth {
                reachable: false,
                latency_ms: None,
                error: Some(e.to_string()),
            },
        }
    }
}
