//! `config_<plugin>`: each plugin's `Config::parse`. An accepted configuration
//! holds what the plugin's request path relies on (lowercase header names, bounded
//! lists, statuses in range); a refused one has a one-line error that names the
//! field and, for basic-auth, never a password. response-headers' compiled plan
//! also has to do what the configuration says, however it saved host calls.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use common::config::{parse_json, ConfigError};
use common::headers::{is_framing, is_token, pairs};
use common::DenyResponse;
use serde_json::Value;

/// Every configuration error: one line (the plugins log it as one, and a name
/// quoted with its newline would forge the next log line), `path: message`.
pub fn check_error(err: &ConfigError) {
    let text = err.to_string();
    assert!(!err.message.is_empty(), "empty error message: {text:?}");
    assert!(
        !text.chars().any(char::is_control),
        "error with a control character: {text:?}"
    );
    if !err.path.is_empty() {
        assert_eq!(text, format!("{}: {}", err.path, err.message));
    }
}

fn lowercase_token(name: &str) -> bool {
    is_token(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

fn clean_value(value: &str) -> bool {
    !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn check_deny(deny: &DenyResponse) {
    assert!((200..=599).contains(&deny.status()), "{deny:?}");
    assert!(!matches!(deny.status(), 204 | 205 | 304), "{deny:?}");
    for (name, value) in deny.headers() {
        assert!(lowercase_token(name) && !is_framing(name), "{deny:?}");
        assert!(clean_value(value), "{deny:?}");
    }
    let wire: Vec<(&[u8], &[u8])> = pairs(deny.wire_headers()).collect();
    let want: Vec<(&[u8], &[u8])> = deny
        .headers()
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(wire, want, "wire headers");
}

pub fn header_authorization(data: &[u8]) {
    use header_authorization::config::{Config, MAX_VALUES};
    match Config::parse(data) {
        Ok(config) => {
            let h = &config.header;
            assert!(
                h == ":authority" || (lowercase_token(h) && h != "host"),
                "header {h:?}"
            );
            assert!((1..=MAX_VALUES).contains(&config.values.len()));
            check_deny(&config.deny);
        }
        Err(err) => check_error(&err),
    }
}

/// A string no configuration error may contain when it is part of a password.
pub const MARKER: &str = "Fz7pw0Mark";

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn basic_auth(data: &[u8]) {
    use basic_auth::config::{Config, MAX_CREDENTIALS, MAX_METHODS, MAX_RULES};
    match Config::parse(data) {
        Ok(config) => {
            assert!((1..=MAX_RULES).contains(&config.rules.len()));
            for rule in &config.rules {
                let methods = &rule.methods;
                // GET brings HEAD, which may be the one past the limit.
                assert!(
                    (1..=MAX_METHODS + 1).contains(&methods.len()),
                    "{methods:?}"
                );
                for m in methods {
                    assert!(is_token(m) && *m == m.to_ascii_uppercase(), "{m:?}");
                }
                if methods.iter().any(|m| m == "GET") {
                    assert!(methods.iter().any(|m| m == "HEAD"), "GET without HEAD");
                }
                assert!((1..=MAX_CREDENTIALS).contains(&rule.credentials.len()));
                for c in &rule.credentials {
                    assert!(!c.user.is_empty() && !c.user.chars().any(char::is_control));
                    // The user name travels upstream in a header.
                    assert!(clean_value(&c.user), "{c:?}");
                }
            }
            assert!(!config.realm.chars().any(char::is_control));
            if let Some(name) = &config.forward_username_header {
                assert!(lowercase_token(name) && !is_framing(name), "{name:?}");
                assert!(name != "authorization" && name != "host", "{name:?}");
            }
            for deny in [&config.missing, &config.wrong] {
                check_deny(deny);
                assert_eq!(deny.status(), 401);
            }
        }
        Err(err) => check_error(&err),
    }
    if let Ok(doc) = parse_json(data) {
        passwords_stay_secret(&doc);
    }
}

/// Puts [`MARKER`] at the start, middle and end of every password in the document
/// (of the whole string where it is no `user:password`), in the plain and the
/// base64 form, and parses each variant: an error may name the credential's
/// index, never what it holds.
fn passwords_stay_secret(doc: &Value) {
    let Some(rules) = doc.get("basic_auth_rules").and_then(Value::as_array) else {
        return;
    };
    let has_credentials = rules.iter().any(|r| {
        r.get("credentials")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(Value::is_string))
    });
    // Where the document already holds the marker or a credential's text (the
    // fuzzer learns both from the comparisons below), an error may quote a key.
    let original = serde_json::to_string(doc).expect("a Value serializes");
    if !has_credentials || original.contains(MARKER) {
        return;
    }
    for base64_form in [false, true] {
        for at in [Place::Start, Place::Middle, Place::End] {
            let mut doc = doc.clone();
            let mut written = Vec::new();
            let rules = doc["basic_auth_rules"]
                .as_array_mut()
                .expect("checked above");
            for rule in rules {
                let Some(credentials) = rule.get_mut("credentials").and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for credential in credentials {
                    let Some(old) = credential.as_str() else {
                        continue;
                    };
                    // A string that is no credential may still be a pasted password.
                    let plain = match user_password(old) {
                        Some((user, password)) => format!("{user}:{}", at.insert(&password)),
                        None => at.insert(old),
                    };
                    let text = if base64_form {
                        B64.encode(&plain)
                    } else {
                        plain
                    };
                    written.push(text.clone());
                    *credential = Value::String(text);
                }
            }
            let text = serde_json::to_vec(&doc).expect("a Value serializes");
            if let Err(err) = basic_auth::config::Config::parse(&text) {
                let shown = err.to_string();
                assert!(!shown.contains(MARKER), "password quoted: {shown}");
                for credential in &written {
                    let quoted = shown.contains(credential.as_str());
                    assert!(
                        !quoted || original.contains(credential.as_str()),
                        "credential quoted: {shown}"
                    );
                }
            }
        }
    }
}

/// User and password of a credential in either form it may be written in.
fn user_password(credential: &str) -> Option<(String, String)> {
    let text = match credential.split_once(':') {
        Some(_) => credential.to_string(),
        None => String::from_utf8(B64.decode(credential.trim()).ok()?).ok()?,
    };
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[derive(Clone, Copy)]
enum Place {
    Start,
    Middle,
    End,
}

impl Place {
    fn insert(self, password: &str) -> String {
        let mut at = match self {
            Place::Start => 0,
            Place::Middle => password.len() / 2,
            Place::End => password.len(),
        };
        while !password.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{MARKER}{}", &password[..at], &password[at..])
    }
}

pub fn response_headers(data: &[u8]) {
    use response_headers::config::{Config, MAX_ITEMS};
    let config = match Config::parse(data) {
        Ok(config) => config,
        Err(err) => return check_error(&err),
    };
    assert!(!(config.request.is_empty() && config.response.is_empty()));
    let doc = parse_json(data).expect("parsed once already");
    for (plan, entries_key, removals_key) in [
        (
            &config.response,
            "response_headers",
            "remove_response_headers",
        ),
        (&config.request, "request_headers", "remove_request_headers"),
    ] {
        let removals = strings(doc.get(removals_key));
        let entries: Vec<(String, String, String)> = doc
            .get(entries_key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
                        (
                            s("name").expect("name").to_ascii_lowercase(),
                            s("value").expect("value"),
                            s("action").unwrap_or_else(|| "set".into()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(removals.len() <= MAX_ITEMS && entries.len() <= MAX_ITEMS);
        for op in plan.ops() {
            assert!(lowercase_token(op_name(op)), "{op:?}");
        }
        // The plan skips reads the configuration already answers; on any header
        // map it must end where the entries, done one by one, end.
        let mut names: Vec<String> = removals.clone();
        names.extend(entries.iter().map(|(n, _, _)| n.clone()));
        names.push("x-unrelated".into());
        let mix = crate::hash(data);
        for shape in 0..3u64 {
            let start = Map::start(&names, shape, mix);
            let mut planned = start.clone();
            plan.apply(&mut planned);
            let mut stepwise = start.clone();
            for name in &removals {
                stepwise.remove_all(&name.to_ascii_lowercase());
            }
            for (name, value, action) in &entries {
                match action.as_str() {
                    "set" => stepwise.set(name, value),
                    "append" => stepwise.push(name, value),
                    "add_if_absent" if !stepwise.has(name) => stepwise.push(name, value),
                    "overwrite_if_exists" if stepwise.has(name) => stepwise.set(name, value),
                    "add_if_absent" | "overwrite_if_exists" => {}
                    other => panic!("an accepted config has action {other:?}"),
                }
            }
            assert_eq!(
                planned.pairs, stepwise.pairs,
                "plan vs entries from {start:?}"
            );
        }
    }
}

fn strings(node: Option<&Value>) -> Vec<String> {
    node.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn op_name(op: &response_headers::plan::Op) -> &str {
    use response_headers::plan::Op;
    match op {
        Op::Remove(n)
        | Op::Add(n, _)
        | Op::Replace(n, _)
        | Op::AddIfAbsent(n, _)
        | Op::ReplaceIfPresent(n, _) => n,
    }
}

/// A header map with Envoy's semantics for the four host calls.
#[derive(Debug, Clone, Default)]
struct Map {
    pairs: Vec<(String, String)>,
}

impl Map {
    /// Shape 0: none of `names`; 1: each once; 2: each zero to two times, by `mix`.
    fn start(names: &[String], shape: u64, mix: u64) -> Map {
        let mut map = Map::default();
        for (i, name) in names.iter().enumerate() {
            let count = match shape {
                0 => 0,
                1 => 1,
                _ => (mix.rotate_left(i as u32 * 2) % 3) as usize,
            };
            for k in 0..count {
                map.push(name, &format!("was-{k}"));
            }
        }
        map
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    fn push(&mut self, name: &str, value: &str) {
        self.pairs.push((name.to_string(), value.to_string()));
    }

    fn remove_all(&mut self, name: &str) {
        self.pairs.retain(|(n, _)| n != name);
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove_all(name);
        self.push(name, value);
    }
}

impl response_headers::plan::Headers for Map {
    fn contains(&mut self, name: &str) -> bool {
        self.has(name)
    }

    fn add(&mut self, name: &str, value: &str) {
        self.push(name, value);
    }

    fn replace(&mut self, name: &str, value: &str) {
        self.set(name, value);
    }

    fn remove(&mut self, name: &str) {
        self.remove_all(name);
    }
}

pub fn dispatch_auth(data: &[u8]) {
    use dispatch_auth::config::{CallPath, Config, FAILURE_MODE_HEADER, FORWARDED};
    let config = match Config::parse(data) {
        Ok(config) => config,
        Err(err) => return check_error(&err),
    };
    assert!(!config.cluster.is_empty() && !config.authority.is_empty());
    // The call's :authority, configured or taken from `cluster`, goes into a
    // header of the call.
    assert!(clean_value(&config.authority), "unclean :authority");
    match &config.path {
        CallPath::Prefix(p) if p.is_empty() => {}
        CallPath::Prefix(p) | CallPath::Fixed(p) => assert!(
            p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b'#'),
            "call path {p:?}"
        ),
    }
    if let Some(m) = &config.method {
        assert!(is_token(m), "{m:?}");
    }
    assert!((1..=60_000).contains(&config.timeout_ms));
    assert!((400..=599).contains(&config.status_on_error));
    assert!(config.cache.ttl_ms <= 86_400_000);
    assert!((1..=1_000_000).contains(&config.cache.max_entries));
    let hop = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ];
    let lists = [
        ("allowed_headers", &config.allowed_headers),
        ("allowed_upstream_headers", &config.allowed_upstream_headers),
        ("allowed_client_headers", &config.allowed_client_headers),
        ("key_headers", &config.cache.key_headers),
    ];
    for (list, names) in lists {
        assert!(
            names.len() <= dispatch_auth::config::MAX_NAMES,
            "{list}: {names:?}"
        );
        for (i, name) in names.iter().enumerate() {
            assert!(lowercase_token(name), "{list}: {name:?}");
            assert!(!names[..i].contains(name), "{list}: {name:?} twice");
            let refused = match list {
                "allowed_headers" => {
                    is_framing(name)
                        || hop.contains(&name.as_str())
                        || name == "host"
                        || FORWARDED.contains(&name.as_str())
                }
                "allowed_upstream_headers" => {
                    is_framing(name)
                        || hop.contains(&name.as_str())
                        || name == "host"
                        || name == FAILURE_MODE_HEADER
                }
                "allowed_client_headers" => is_framing(name),
                _ => false,
            };
            assert!(!refused, "{list}: {name:?} accepted");
        }
    }
    for (name, value) in &config.headers_to_add {
        assert!(lowercase_token(name) && clean_value(value), "{name:?}");
        assert!(
            !config.allowed_headers.contains(name),
            "{name:?} copied and fixed"
        );
        assert!(
            !is_framing(name)
                && !hop.contains(&name.as_str())
                && name != "host"
                && !FORWARDED.contains(&name.as_str()),
            "{name:?} added"
        );
    }
}

/// `config_chain`: the chain module's list. Whatever the input: no panic; an
/// accepted list has 1..=32 instances with unique, valid names, each built by its
/// own plugin; an error about an instance names it (`chain[i] (name): ...`) and
/// is one line, like every other.
pub fn chain(data: &[u8]) {
    let instances = match chain::config::parse(data) {
        Ok(instances) => instances,
        Err(err) => return check_error(&err),
    };
    assert!((1..=chain::config::MAX_INSTANCES).contains(&instances.len()));
    let mut names: Vec<&str> = instances.iter().map(|i| i.label()).collect();
    for name in &names {
        assert!(
            !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "instance name {name:?}"
        );
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), instances.len(), "duplicate instance names");
}
