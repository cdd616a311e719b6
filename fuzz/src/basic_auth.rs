//! `basic_auth_decide`: basic-auth's request decision, `basic_auth::auth::decide`,
//! over Basic credentials, method overrides and rule matching. Input lines:
//!
//! ```text
//! prefix /admin          the fuzzed rule: prefix, exact or suffix, and its path
//! GET                    :method
//! /admin/x?y=1           :path
//! o DELETE               a method-override header value ("o " then the value)
//! Basic YWxpY2U6YQ==     any other line: an Authorization header value
//! ```
//!
//! Besides the fuzzed rule, the configuration has two fixed ones, and every
//! password is known here, so the decision is checked against what it must be: a
//! request no rule covers passes; one that rules cover is allowed only with the
//! credentials of a user every one of those rules accepts, and always with them.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use basic_auth::auth::{decide as decide_request, Decision, Denial, MAX_AUTHORIZATION};
use basic_auth::config::Config;
use basic_auth::secret::{sha1, sha256};
use common::path::RequestPath;
use serde_json::json;

/// The users of the fuzzed rule and their passwords, each stored another way.
const USERS: [(&str, &str); 4] = [
    ("alice", "a"),
    ("bob", "b"),
    ("carol", "c"),
    ("dave", "d:d"),
];
/// The fixed rules' users.
const JSON_USERS: [(&str, &str); 2] = [("alice", "a"), ("erin", "e")];
const ADMIN_USERS: [(&str, &str); 1] = [("bob", "b")];

fn config(kind: &str, path: &str) -> Option<Config> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let fuzzed = json!({
        kind: path,
        "request_methods": ["GET", "POST", "delete"],
        "credentials": [
            "alice:a",
            format!("bob:{{SHA}}{}", b64.encode(sha1(b"b"))),
            format!("carol:{{SHA256}}{}", b64.encode(sha256(b"c"))),
            b64.encode("dave:d:d"),
        ],
    });
    let doc = json!({"basic_auth_rules": [
        fuzzed,
        {"suffix": ".json", "request_methods": ["GET"], "credentials": ["alice:a", "erin:e"]},
        {"prefix": "/admin/", "request_methods": ["PUT", "PATCH"], "credentials": ["bob:b"]},
    ]});
    Config::from_value(&doc).ok()
}

fn users(rule: usize) -> &'static [(&'static str, &'static str)] {
    match rule {
        0 => &USERS,
        1 => &JSON_USERS,
        _ => &ADMIN_USERS,
    }
}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// User and password of a Basic value, read leniently (any surrounding
/// whitespace, any case of the scheme, padding or not).
fn credentials(value: &[u8]) -> Option<(String, String)> {
    let blank = |c: char| c.is_ascii_whitespace();
    let value = std::str::from_utf8(value).ok()?.trim_matches(blank);
    let (scheme, token) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(token.trim_matches(blank)).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

pub fn decide(data: &[u8]) {
    let mut lines = crate::lines(data);
    let rule_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (kind, rule_path) = match rule_line.split_once(' ') {
        Some((kind @ ("prefix" | "exact" | "suffix"), path)) => (kind, path),
        _ => ("prefix", rule_line.as_str()),
    };
    let Some(config) = config(kind, rule_path) else {
        return;
    };
    let method = lines.next().unwrap_or_default();
    let path = lines.next().unwrap_or_default();
    let (mut overrides, mut authorization) = (Vec::new(), Vec::new());
    for line in lines {
        match line.strip_prefix(b"o ") {
            Some(value) => overrides.push(value),
            None => authorization.push(line),
        }
    }
    let got = decide_request(
        &config,
        method,
        &overrides,
        path,
        authorization.iter().copied(),
    );

    let request = match RequestPath::new(path) {
        Ok(request) => request,
        Err(e) => return assert_eq!(got, Decision::BadPath(e)),
    };
    let listed = |rule: &basic_auth::config::Rule, m: &[u8]| {
        let m = m.trim_ascii().to_ascii_uppercase();
        rule.methods.iter().any(|l| l.as_bytes() == m)
    };
    let applicable: Vec<usize> = (0..config.rules.len())
        .filter(|&i| {
            let rule = &config.rules[i];
            rule.path.matches(&request)
                && (listed(rule, method) || overrides.iter().any(|o| listed(rule, o)))
        })
        .collect();
    if applicable.is_empty() {
        return assert_eq!(got, Decision::Pass, "no rule applies");
    }
    let value = match authorization.as_slice() {
        [] => return assert_eq!(got, Decision::Deny(Denial::NoHeader)),
        [_, _, ..] => return assert_eq!(got, Decision::Deny(Denial::Several)),
        [value] => *value,
    };
    let accepted_by_all = |user: &str, password: &str| {
        applicable
            .iter()
            .all(|&i| users(i).contains(&(user, password)))
    };
    if let Decision::Allow(user) = got {
        let (u, p) = credentials(value).expect("allowed without Basic credentials");
        assert_eq!(u, user, "allowed as another user");
        assert!(accepted_by_all(&u, &p), "{u}:{p} allowed by {applicable:?}");
    }
    // A well-formed value of a known user is decided by the rules alone.
    let canonical = credentials(value).filter(|(u, p)| {
        value.len() <= MAX_AUTHORIZATION
            && value == format!("Basic {}", B64.encode(format!("{u}:{p}"))).as_bytes()
    });
    if let Some((user, password)) = canonical {
        if accepted_by_all(&user, &password) {
            assert_eq!(got, Decision::Allow(&user), "{user} refused");
        } else {
            assert_eq!(got, Decision::Deny(Denial::Rejected), "{user} not rejected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_reading_of_basic_values() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("Basic YWxpY2U6YQ==", Some(("alice", "a"))),
            (" basic\tYWxpY2U6YQ ", Some(("alice", "a"))),
            ("Bearer YWxpY2U6YQ==", None),
            ("Basic", None),
        ];
        for (value, want) in cases {
            let got = credentials(value.as_bytes());
            let want = want.map(|(u, p)| (u.to_string(), p.to_string()));
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn the_fixed_rules_parse() {
        let config = config("prefix", "/").unwrap();
        assert_eq!(config.rules.len(), 3);
        assert_eq!(config.rules[0].methods, ["GET", "POST", "DELETE", "HEAD"]);
    }
}
