//! Stamps the binary with its build number and commit so `/version` and the
//! `pricehub_build_info` metric can say exactly what is running.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_NUMBER");
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    // Rerun when the commit changes. The paths come from git itself: in a worktree
    // `.git` is a file and HEAD lives elsewhere, and a path that does not exist would
    // make cargo rerun this script, and recompile the crate, on every build.
    for path in git_paths() {
        println!("cargo:rerun-if-changed={path}");
    }

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

/// HEAD, the checked-out branch's ref and packed-refs of the repository being built,
/// where they exist (only this branch: other worktrees commit to the same refs/heads).
fn git_paths() -> Vec<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    let rev_parse = |arg: &str| git(&["rev-parse", "--path-format=absolute", arg]);
    let (Some(dir), Some(common)) = (rev_parse("--git-dir"), rev_parse("--git-common-dir")) else {
        return Vec::new();
    };
    let mut paths = vec![format!("{dir}/HEAD"), format!("{common}/packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        // A branch only in packed-refs gets its loose file on the next commit: watch the
        // directory where it will appear until then.
        let loose = std::path::PathBuf::from(format!("{common}/{branch}"));
        let watched = if loose.exists() {
            Some(loose)
        } else {
            loose.parent().map(std::path::Path::to_path_buf)
        };
        paths.extend(watched.map(|p| p.display().to_string()));
    }
    paths
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect()
}
