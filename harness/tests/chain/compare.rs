//! The comparison behind `chain.rs`: one list of plugins started twice, as
//! separate filters and as one chain of the same instances, each Envoy with auth
//! services of its own; the same requests sent to both in the same order; what a
//! client and the upstream see, and the auth calls each request made, reduced to
//! what does not vary from one Envoy to another, must be the same. The separate
//! filters' answers are also checked against what the case says they are, so the
//! two forms cannot agree on something wrong.

use harness::envoy::static_cluster;
use harness::{Envoy, Form, Reply, Request, Response, Server, Stack};
use serde_json::Value;
use std::time::Duration;

/// Response headers that differ between any two Envoys, or with the body's size.
const VOLATILE_RESPONSE: [&str; 4] = [
    "date",
    "x-envoy-upstream-service-time",
    "x-request-id",
    "content-length",
];

/// Request headers the upstream sees that differ between any two Envoys.
const VOLATILE_UPSTREAM: [&str; 1] = ["x-request-id"];

/// The auth services' names; `auth-<name>` is the cluster a dispatch-auth
/// instance names to reach one.
pub const SERVICES: [&str; 2] = ["a", "b"];

/// How long the auth services take over `Bearer stalled`: longer than any wait
/// a case sets up for Envoy to give up first.
pub const STALLED: Duration = Duration::from_secs(3);

/// An auth service that reads the bearer token: `alice` and `bob` are allowed
/// (naming the user in `x-by-<name>`; service `b` denies `bob`), `slow-alice`
/// after 300 ms, `stalled` not before [`STALLED`], `anon` allowed without a
/// user, `deny` denied, `error` a 500, anything else a 401 challenge.
fn auth(name: &'static str) -> Server {
    Server::start(move |req| {
        let token = req
            .header_value("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let by = format!("x-by-{name}");
        let user = token.strip_prefix("slow-").unwrap_or(token);
        match (name, token) {
            ("b", "bob") => Reply::with(403, &[], "b says no\n"),
            (_, "alice" | "bob") => Reply::with(200, &[(&by, user), ("x-internal", "no")], ""),
            (_, "slow-alice") => match Reply::with(200, &[(&by, user)], "") {
                Reply::Respond(response) => Reply::Delay(Duration::from_millis(300), response),
                other => other,
            },
            (_, "stalled") => Reply::Delay(STALLED, Response::default()),
            (_, "anon") => Reply::status(200),
            (_, "deny") => Reply::with(403, &[], "forbidden by policy\n"),
            (_, "error") => Reply::with(500, &[], "down\n"),
            _ => Reply::with(401, &[("www-authenticate", "Bearer")], "who are you?\n"),
        }
    })
}

/// One request of a case and what the separate filters answer it with.
pub struct Send {
    what: &'static str,
    request: Request,
    status: u16,
    calls: [usize; 2],
    body: Option<&'static str>,
    headers: Vec<(&'static str, Vec<&'static str>)>,
    upstream: Vec<(&'static str, Vec<&'static str>)>,
}

/// `GET path` with `headers`, described as `what`; expected to pass (200)
/// without auth calls until said otherwise.
pub fn get(what: &'static str, path: &str, headers: &[(&str, &str)]) -> Send {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    Send {
        what,
        request,
        status: 200,
        calls: [0, 0],
        body: None,
        headers: Vec::new(),
        upstream: Vec::new(),
    }
}

impl Send {
    /// Answered locally with `status` and `body` (the upstream never sees it).
    pub fn denied(mut self, status: u16, body: &'static str) -> Self {
        self.status = status;
        self.body = Some(body);
        self
    }

    /// Passed, and the upstream answered `status` (the echo's `/status/<code>`).
    pub fn answered(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sent as a POST with `body`, which the upstream must get whole.
    pub fn post(mut self, body: &str) -> Self {
        self.request.method = "POST".into();
        self.request.body = body.as_bytes().to_vec();
        self
    }

    /// The auth calls this request makes to services `a` and `b`.
    pub fn calls(mut self, a: usize, b: usize) -> Self {
        self.calls = [a, b];
        self
    }

    /// The response carries exactly these values of `name`, in order.
    pub fn header(mut self, name: &'static str, values: &[&'static str]) -> Self {
        self.headers.push((name, values.to_vec()));
        self
    }

    /// The upstream saw exactly these values of request header `name`.
    pub fn upstream(mut self, name: &'static str, values: &[&'static str]) -> Self {
        self.upstream.push((name, values.to_vec()));
        self
    }
}

/// What one request came to, in terms that do not vary between Envoys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: u16,
    headers: Vec<(String, String)>,
    /// The upstream's view of the request (method, path, headers, body) when it
    /// answered, else the body as sent.
    body: String,
    /// Request headers the upstream saw; empty when it did not see the request.
    upstream: Vec<(String, String)>,
    calls: [usize; 2],
}

fn kept(headers: &[(String, String)], volatile: &[&str]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| !volatile.contains(&n.as_str()))
        .collect()
}

fn values(headers: &[(String, String)], name: &str) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Whether the response is the echo upstream's (its JSON body).
fn echoed(response: &Response) -> bool {
    serde_json::from_slice::<Value>(&response.body).is_ok_and(|doc| doc.get("headers").is_some())
}

/// An edit of the bootstrap both forms get (a connection-manager timeout, say).
pub type Patch = fn(&mut Value);

/// Starts `plugins` in `form`, with clusters `auth-a` and `auth-b` on auth
/// services of its own.
fn start(form: Form, plugins: &[(&str, Value)], services: &[Server], patch: Patch) -> Envoy {
    let mut stack = Stack::new().form(form).patch(patch);
    for (name, service) in SERVICES.iter().zip(services) {
        stack = stack.cluster(static_cluster(&format!("auth-{name}"), service.addr()));
    }
    for (plugin, config) in plugins {
        stack = stack.plugin(plugin, config.clone());
    }
    stack.start()
}

/// Sends every request of `sends` through `plugins` in `form`; returns what
/// each came to.
fn outcomes(form: Form, plugins: &[(&str, Value)], sends: &[Send], patch: Patch) -> Vec<Outcome> {
    let services: Vec<Server> = SERVICES.iter().map(|name| auth(name)).collect();
    let envoy = start(form, plugins, &services, patch);
    let mut seen = Vec::new();
    for send in sends {
        let before: Vec<usize> = services.iter().map(Server::count).collect();
        let response = envoy.send(&send.request);
        let after: Vec<usize> = services.iter().map(Server::count).collect();
        let calls = [0, 1].map(|i| after[i] - before[i]);
        let (body, upstream) = if echoed(&response) {
            let request = response.echoed();
            let upstream = kept(&request.headers, &VOLATILE_UPSTREAM);
            let body = format!(
                "{} {} {:?}",
                request.method,
                request.path,
                String::from_utf8_lossy(&request.body)
            );
            (body, upstream)
        } else {
            (response.text(), Vec::new())
        };
        seen.push(Outcome {
            status: response.status,
            headers: kept(&response.headers, &VOLATILE_RESPONSE),
            body,
            upstream,
            calls,
        });
    }
    seen
}

/// Checks what the separate filters answered against what the case says.
fn check(case: &str, send: &Send, got: &Outcome) {
    let what = format!("{case}: {}", send.what);
    assert_eq!(got.status, send.status, "{what}: {got:?}");
    assert_eq!(got.calls, send.calls, "{what}: auth calls (a, b)");
    match send.body {
        Some(body) => {
            assert_eq!(got.body, body, "{what}");
            assert!(got.upstream.is_empty(), "{what}: reached the upstream");
        }
        None => {
            let request = &send.request;
            let sent = format!(
                "{} {} {:?}",
                request.method,
                request.path,
                String::from_utf8_lossy(&request.body)
            );
            assert_eq!(got.body, sent, "{what}: the upstream's view");
        }
    }
    for (name, want) in &send.headers {
        assert_eq!(values(&got.headers, name), *want, "{what}: response {name}");
    }
    for (name, want) in &send.upstream {
        assert_eq!(
            values(&got.upstream, name),
            *want,
            "{what}: upstream {name}"
        );
    }
}

/// Runs `sends` through `plugins` as separate filters and as one chain: the
/// separate filters must answer as the case says, and the chain exactly as they
/// did.
pub fn same_in_both_forms(case: &str, plugins: &[(&str, Value)], sends: &[Send]) {
    same_in_both_forms_patched(case, plugins, sends, |_| {});
}

/// [`same_in_both_forms`] with `patch` applied to both Envoys' bootstrap.
pub fn same_in_both_forms_patched(
    case: &str,
    plugins: &[(&str, Value)],
    sends: &[Send],
    patch: Patch,
) {
    let separate = outcomes(Form::Separate, plugins, sends, patch);
    let chain = outcomes(Form::Chain, plugins, sends, patch);
    for ((send, separate), chain) in sends.iter().zip(&separate).zip(&chain) {
        check(case, send, separate);
        assert_eq!(
            chain, separate,
            "{case}: {}: the chain (left) differs from separate filters (right)",
            send.what
        );
    }
}
