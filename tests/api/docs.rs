//! The configuration reference in docs/configuration.md is generated from the binary's
//! `--help`, and this test keeps it that way: it fails when a flag, variable or default
//! changes without the document. Regenerate with `UPDATE_DOCS=1 cargo test --test api docs::`.

use std::process::Command;

const SUBCOMMANDS: &[&str] = &[
    "serve",
    "all",
    "import",
    "migrate",
    "provider",
    "collector",
    "healthcheck",
];
const BEGIN: &str = "<!-- BEGIN GENERATED: cargo test --test api docs:: -->";
const END: &str = "<!-- END GENERATED -->";

#[derive(Debug)]
struct Opt {
    flag: String,
    env: Option<String>,
    default: Option<String>,
    help: String,
}

fn help_of(sub: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pricehub"))
        .args([sub, "--help"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Parses clap's long help: option headers, their first help line, env and default.
fn options(help: &str) -> Vec<Opt> {
    let mut opts: Vec<Opt> = Vec::new();
    for line in help.lines() {
        let t = line.trim();
        if line.starts_with("  -") || line.starts_with("      --") {
            let flag = t
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or(t)
                .to_string();
            opts.push(Opt {
                flag,
                env: None,
                default: None,
                help: String::new(),
            });
        } else if let Some(o) = opts.last_mut() {
            if let Some(env) = t.strip_prefix("[env: ") {
                o.env = Some(
                    env.trim_end_matches(']')
                        .trim_end_matches('=')
                        .split('=')
                        .next()
                        .unwrap()
                        .to_string(),
                );
            } else if let Some(d) = t.strip_prefix("[default: ") {
                o.default = Some(d.trim_end_matches(']').to_string());
            } else if o.help.is_empty() && !t.is_empty() && !t.starts_with('[') {
                o.help = t.to_string();
            }
        }
    }
    opts.retain(|o| o.flag != "--help");
    opts
}

fn generated() -> String {
    let mut out = String::new();
    for sub in SUBCOMMANDS {
        out.push_str(&format!("\n### `pricehub {sub}`\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n"));
        for o in options(&help_of(sub)) {
            let cell = |v: &Option<String>| {
                v.as_ref()
                    .map(|s| format!("`{s}`"))
                    .unwrap_or_else(|| "—".into())
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                o.flag,
                cell(&o.env),
                cell(&o.default),
                o.help.replace('|', "\\|")
            ));
        }
    }
    out
}

#[test]
fn configuration_reference_matches_the_help() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("generated-section start marker") + BEGIN.len();
    let end = doc.find(END).expect("generated-section end marker");
    let want = generated();
    if doc[start..end] != want {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let new = format!("{}{}{}", &doc[..start], want, &doc[end..]);
            std::fs::write(&path, new).unwrap();
            return;
        }
        panic!(
            "docs/configuration.md is out of date with `--help`; run `UPDATE_DOCS=1 cargo test --test api docs::`.\nExpected:\n{want}"
        );
    }
}

#[test]
fn every_setting_has_an_environment_variable() {
    for sub in SUBCOMMANDS {
        for o in options(&help_of(sub)) {
            assert!(
                o.env.is_some() || o.flag == "--version",
                "pricehub {sub} {} has no environment variable",
                o.flag
            );
        }
    }
}

/// No tracked text file holds a merge's conflict markers (one once reached the docs).
#[test]
fn no_conflict_markers_are_committed() {
    let root = env!("CARGO_MANIFEST_DIR");
    let Ok(out) = Command::new("git")
        .args(["-C", root, "ls-files", "-z"])
        .output()
    else {
        return crate::common::unavailable("git (to list the tracked files)");
    };
    assert!(out.status.success(), "git ls-files failed");
    let mut found = Vec::new();
    for path in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let Ok(text) = std::fs::read_to_string(std::path::Path::new(root).join(&path)) else {
            continue; // binary (or removed in the work tree)
        };
        for (i, line) in text.lines().enumerate() {
            if line.starts_with("<<<<<<< ")
                || line.starts_with(">>>>>>> ")
                || line == "=======" && text.contains("\n<<<<<<< ")
            {
                found.push(format!("{path}:{}: {line}", i + 1));
            }
        }
    }
    assert!(found.is_empty(), "conflict markers:\n{}", found.join("\n"));
}
