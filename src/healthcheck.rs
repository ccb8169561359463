//! `pricehub healthcheck`: probes a pricehub HTTP endpoint and exits 0 when it answers
//! 2xx, 1 otherwise. It is the container image's `HEALTHCHECK` (the runtime image has no
//! shell and no curl), and works for every process kind through `--url`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::Args;

/// `pricehub healthcheck`.
#[derive(Args, Clone, Debug)]
pub struct HealthcheckArgs {
    /// URL to probe (e.g. `http://127.0.0.1:5556/readyz` for a provider); default: `/readyz` of the API on loopback at the port of `--listen`.
    #[arg(long, env = "PRICEHUB_HEALTHCHECK_URL")]
    pub url: Option<String>,

    /// Address the API listens on; only its port is used, to build the default URL.
    #[arg(long, env = "PRICEHUB_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Seconds to wait for the answer before reporting unhealthy.
    #[arg(long, env = "PRICEHUB_HEALTHCHECK_TIMEOUT", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

impl HealthcheckArgs {
    /// The URL probed: `--url`, or `/readyz` on the loopback address of `--listen`.
    pub fn target(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let host = match self.listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!(
            "http://{}/readyz",
            SocketAddr::new(host, self.listen.port())
        )
    }
}

/// Probes the target once; `Ok` with a one-line report when it answered 2xx.
pub async fn probe(args: &HealthcheckArgs) -> Result<String, String> {
    let url = args.target();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("unhealthy: {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let body = body.trim();
    if status.is_success() {
        Ok(format!("healthy: {url} answered {status}"))
    } else {
        Err(format!("unhealthy: {url} answered {status}: {body}"))
    }
}

/// Runs the probe and prints its report; exit code 0 (healthy) or 1.
pub async fn run(args: HealthcheckArgs) -> std::process::ExitCode {
    match probe(&args).await {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(report) => {
            eprintln!("{report}");
            std::process::ExitCode::FAILURE
        }
    }
}
