//! Stamps the binary with its build number and commit so `/version` and the
//! `pricehub_build_info` metric can say exactly what is running.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_NUMBER");
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");

    let build = std::env::var("BUILD_NUMBER").unwrap_or_default();
    let build = match build.trim() {
        "" => 0,
        b => b
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("BUILD_NUMBER must be a non-negative integer, got {b:?}")),
    };
    println!("cargo:rustc-env=PRICEHUB_BUILD_NUMBER={build}");

    let commit = std::env::var("GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PRICEHUB_GIT_COMMIT={commit}");
}
