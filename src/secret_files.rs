//! `*_FILE` variables for secrets: `DATABASE_URL_FILE=/run/secrets/database_url` reads
//! the file, trims surrounding whitespace (the trailing newline editors add), and
//! sets `DATABASE_URL` before the command line is parsed — so every subcommand, flag
//! default and validation sees the secret exactly as if it had been set directly, and
//! the value is wrapped (never logged) like any other secret. Same convention as the
//! official postgres image's `POSTGRES_PASSWORD_FILE`.

use std::ffi::OsString;

/// The settings that are secrets and may come from a file (`NAME_FILE`).
pub const SECRET_VARS: &[&str] = &[
    "DATABASE_URL",
    "PRICEHUB_DATABASE_PASSWORD",
    "PRICEHUB_INGEST_TOKEN",
    "REDIS_URL",
];

/// Reads every `NAME_FILE` in `SECRET_VARS` through `get`, returning the `(NAME, value)`
/// pairs to set. Errors name the variable and the file, never the contents.
pub fn resolve(
    get: impl Fn(&str) -> Option<OsString>,
    read: impl Fn(&std::path::Path) -> std::io::Result<String>,
) -> Result<Vec<(&'static str, String)>, String> {
    let mut found = Vec::new();
    for &name in SECRET_VARS {
        let file_var = format!("{name}_FILE");
        let Some(path) = get(&file_var).filter(|p| !p.is_empty()) else {
            continue;
        };
        if get(name).is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "both {name} and {file_var} are set; set only one of them"
            ));
        }
        let path = std::path::PathBuf::from(path);
        let value =
            read(&path).map_err(|e| format!("cannot read {file_var} ({}): {e}", path.display()))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{file_var} ({}) is empty", path.display()));
        }
        found.push((name, value.to_string()));
    }
    Ok(found)
}

/// Applies the `*_FILE` variables of this process's environment. Must run before any
/// other thread starts (it sets environment variables).
pub fn load_from_environment() -> Result<(), String> {
    let found = resolve(|k| std::env::var_os(k), |p| std::fs::read_to_string(p))?;
    for (name, value) in found {
        // SAFETY: called at the top of `main`, before the runtime or any other thread
        // exists, so nothing reads the environment concurrently.
        unsafe { std::env::set_var(name, value) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, OsString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect()
    }

    #[test]
    fn reads_and_trims_files_and_rejects_ambiguity() {
        let e = env(&[("PRICEHUB_INGEST_TOKEN_FILE", "/s/token")]);
        let got = resolve(|k| e.get(k).cloned(), |_| Ok("  s3cret\n".into())).unwrap();
        assert_eq!(got, vec![("PRICEHUB_INGEST_TOKEN", "s3cret".to_string())]);

        let e = env(&[("REDIS_URL_FILE", "/s/r"), ("REDIS_URL", "redis://x")]);
        let err = resolve(|k| e.get(k).cloned(), |_| Ok("redis://y".into())).unwrap_err();
        assert!(err.contains("both REDIS_URL and REDIS_URL_FILE"), "{err}");

        let e = env(&[("DATABASE_URL_FILE", "/s/db")]);
        let err = resolve(|k| e.get(k).cloned(), |_| Ok(" \n".into())).unwrap_err();
        assert!(err.contains("DATABASE_URL_FILE (/s/db) is empty"), "{err}");
    }
}
