//! Strings and JSON as both backends store them, whatever a client sent.
//!
//! PostgreSQL's `text` cannot hold U+0000, and its `jsonb` refuses the escape `\u0000`
//! ("unsupported Unicode escape sequence"); a value with either makes the whole statement
//! fail — and a worker that retries it fails forever. Everything pricehub stores as text
//! or JSON that can carry a client's bytes (rejection details, idempotent replays, error
//! messages) goes through these functions, on both backends, so the stored value is the
//! same everywhere.
//!
//! Lone surrogates cannot reach storage: a Rust string is valid UTF-8 (a JSON `\ud800`
//! fails to parse, invalid UTF-8 in CSV is shown as U+FFFD), and serde_json writes
//! non-ASCII characters as UTF-8, never as `\uD8xx` escapes.

use std::borrow::Cow;

/// What U+0000 is stored as: the six characters of its JSON escape.
const NUL_SHOWN: &str = "\\u0000";

/// `s` as a `text` value: unchanged unless it holds U+0000, which becomes `\u0000`.
///
/// JSON written by serde_json never holds U+0000 (it escapes control characters), so a
/// stored JSON answer comes back byte for byte.
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', NUL_SHOWN))
    } else {
        Cow::Borrowed(s)
    }
}

/// `value` as JSON text that `jsonb` accepts: U+0000 in any string or key is stored as
/// the six characters `\u0000`; everything else is serde_json's output as is.
pub fn jsonb(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(value).expect("values pricehub stores serialize");
    // Only an escaped NUL is a problem; `\\u0000` (a backslash, then "u0000") matches
    // too and merely takes the slow path, which leaves it alone.
    if !json.contains(NUL_SHOWN) {
        return json;
    }
    let mut v: serde_json::Value =
        serde_json::from_str(&json).expect("serde_json reads its own output");
    strip_nul(&mut v);
    serde_json::to_string(&v).expect("a JSON value serializes")
}

fn strip_nul(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(t) = text(s) {
                *s = t;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nul),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut item) in entries {
                strip_nul(&mut item);
                map.insert(text(&k).into_owned(), item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_replaces_only_nul() {
        assert!(matches!(text("plain é 😀"), Cow::Borrowed(_)));
        assert_eq!(text("a\0b"), "a\\u0000b");
    }

    #[test]
    fn jsonb_has_no_nul_escape_and_keeps_the_rest() {
        let v = json!({"reason": "field \"x\0\"", "k\0": ["\0", "\\u0000", 1]});
        let s = jsonb(&v);
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["reason"], "field \"x\\u0000\"");
        assert_eq!(back["k\\u0000"][0], "\\u0000");
        assert_eq!(back["k\\u0000"][1], "\\u0000");
        // What PostgreSQL refuses: a \u0000 escape (a backslash escaped is fine).
        assert!(!s.replace("\\\\", "").contains("\\u0000"), "{s}");
        let plain = json!([{"reason": "unknown port code \"\\u{0}\" 😀"}]);
        assert_eq!(jsonb(&plain), serde_json::to_string(&plain).unwrap());
    }

    #[test]
    fn serde_json_never_writes_raw_nul_or_surrogate_escapes() {
        let s: String = ['\0', '\u{1}', '\u{d7ff}', '\u{e000}', '\u{10ffff}', '😀']
            .iter()
            .collect();
        let out = serde_json::to_string(&s).unwrap();
        assert!(!out.contains('\0'));
        assert!(!out.to_ascii_lowercase().contains("\\ud8"));
        assert!(matches!(text(&out), Cow::Borrowed(_)));
    }
}
