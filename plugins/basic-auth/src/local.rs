//! What `cargo xtask run` needs of an instance: the `Authorization` header that
//! gets a `GET /` past it, read from the raw config because the parsed one keeps
//! only digests. Never called in the module.

use crate::auth::{decide, Decision};
use crate::config::Config;
use base64::Engine;
use common::plugin::LocalRun;
use serde_json::Value;

/// basic-auth guards `GET /` (what the curl commands ask for) only when one of its
/// rules covers it; then the pass header carries the first credential of the first
/// such rule. A `{SHA}`-style first credential cannot be turned back into a
/// password: the curl commands then stop at basic-auth's denial.
pub fn run(config: &Config, raw: &Value) -> LocalRun {
    let no_auth: [&[u8]; 0] = [];
    if decide(config, b"GET", &[], b"/", no_auth) == Decision::Pass {
        return LocalRun::Passive;
    }
    let covers_root = |rule: &&Value| {
        let Some(mut one) = rule.as_object().cloned() else {
            return false;
        };
        one.insert("credentials".into(), serde_json::json!(["u:p"]));
        let single = serde_json::json!({"basic_auth_rules": [one]});
        Config::from_value(&single)
            .is_ok_and(|c| decide(&c, b"GET", &[], b"/", no_auth) != Decision::Pass)
    };
    let first = raw["basic_auth_rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(covers_root))
        .and_then(|rule| rule["credentials"].get(0))
        .and_then(Value::as_str);
    let header = match first {
        Some(c) if c.contains(":{SHA") => None,
        Some(c) if c.contains(':') => Some(base64::engine::general_purpose::STANDARD.encode(c)),
        Some(c) => Some(c.to_string()),
        None => None,
    };
    LocalRun::Gate(
        header
            .map(|h| vec![("authorization".to_string(), format!("Basic {h}"))])
            .unwrap_or_default(),
    )
}
