//! The soak's traffic: what each request of the run exercises, and the loopback
//! auth service that answers dispatch-auth's calls for it.

use crate::bench::ALICE_BASIC;
use base64::Engine;
use harness::{Reply, Request, Response, Server};
use std::time::Duration;

/// Paths that keep coming back, so the cache has keys to hit.
const HOT_KEYS: usize = 64;
/// How long the auth service takes for a client that will be gone by then, and how
/// long that client stays: long enough for the request to pass the gate plugins
/// and the call to go out, well short of the answer.
const SLOW_AUTH: Duration = Duration::from_millis(200);
pub const CLIENT_STAYS: Duration = Duration::from_millis(20);

/// What one request is meant to exercise. The deny and cache-miss paths each run
/// in every stretch, not only the path that lets everything through; so does a
/// client that leaves while its auth call is pending, since the call outlives the
/// stream (proxy-wasm cannot cancel it) and state left behind there would pile up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hit,
    NewKey,
    HeaderDenied,
    BasicDenied,
    AuthDenied,
    AuthDeniedNewKey,
    AuthFailed,
    ClientGone,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::HeaderDenied,
        Kind::BasicDenied,
        Kind::AuthDenied,
        Kind::AuthDeniedNewKey,
        Kind::AuthFailed,
        Kind::ClientGone,
        Kind::NewKey,
        Kind::Hit,
    ];

    /// Requests of this kind in every hundred.
    pub fn share(self) -> usize {
        match self {
            Kind::Hit => 85,
            Kind::NewKey => 5,
            Kind::HeaderDenied | Kind::BasicDenied | Kind::AuthDenied => 2,
            Kind::AuthDeniedNewKey => 2,
            Kind::AuthFailed => 1,
            Kind::ClientGone => 1,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Hit => "allowed, cached key",
            Kind::NewKey => "allowed, new key (cache miss)",
            Kind::HeaderDenied => "denied by header-authorization",
            Kind::BasicDenied => "denied by basic-auth (unknown user)",
            Kind::AuthDenied => "denied by dispatch-auth, cached key",
            Kind::AuthDeniedNewKey => "denied by dispatch-auth, new key",
            Kind::AuthFailed => "auth service fails (500), new key",
            Kind::ClientGone => "client gone while the auth call is pending",
        }
    }

    /// The plugin that answers this kind itself, and its status.
    pub fn answered_by(self) -> Option<(&'static str, u16)> {
        match self {
            Kind::Hit | Kind::NewKey | Kind::ClientGone => None,
            Kind::HeaderDenied => Some(("header-authorization", 403)),
            Kind::BasicDenied => Some(("basic-auth", 401)),
            Kind::AuthDenied | Kind::AuthDeniedNewKey => Some(("dispatch-auth", 401)),
            // dispatch-auth's status_on_error, 403 by default.
            Kind::AuthFailed => Some(("dispatch-auth", 403)),
        }
    }

    /// The status to expect when `plugins` run: a kind whose plugin is not in the
    /// stack passes like any other request.
    pub fn expected(self, plugins: &[&str]) -> u16 {
        match self.answered_by() {
            Some((plugin, status)) if plugins.contains(&plugin) => status,
            _ => 200,
        }
    }

    /// The `i`th request of the run, of this kind. Keys that must be new embed `i`.
    pub fn request(self, i: usize) -> Request {
        let hot = format!("/soak/hot/{}", i % HOT_KEYS);
        let (path, allow, authorization, token) = match self {
            Kind::Hit => (hot, "true", ALICE_BASIC.to_string(), "demo".to_string()),
            Kind::NewKey => (
                format!("/soak/new/{i}"),
                "true",
                ALICE_BASIC.to_string(),
                "demo".to_string(),
            ),
            Kind::HeaderDenied => (hot, "false", ALICE_BASIC.to_string(), "demo".to_string()),
            Kind::BasicDenied => {
                let user = base64::engine::general_purpose::STANDARD.encode(format!("u{i}:nope"));
                (hot, "true", format!("Basic {user}"), "demo".to_string())
            }
            Kind::AuthDenied => (hot, "true", ALICE_BASIC.to_string(), "deny".to_string()),
            Kind::AuthDeniedNewKey => (hot, "true", ALICE_BASIC.to_string(), format!("deny-{i}")),
            Kind::AuthFailed => (hot, "true", ALICE_BASIC.to_string(), format!("fail-{i}")),
            Kind::ClientGone => (hot, "true", ALICE_BASIC.to_string(), format!("slow-{i}")),
        };
        Request::get(&path)
            .header("allow", allow)
            .header("authorization", &authorization)
            .header("x-token", &token)
    }
}

/// The kind of the `i`th request: the shares laid out over each block of a hundred.
pub fn kind(i: usize) -> Kind {
    let mut rest = i % 100;
    for kind in Kind::ALL {
        if rest < kind.share() {
            return kind;
        }
        rest -= kind.share();
    }
    Kind::Hit
}

/// Answers by the `x-token` the plugin forwards: `demo*` allows, `fail*` fails,
/// anything else is denied with a challenge (which the cache then stores).
pub fn auth_service() -> Server {
    Server::start(|req| match req.header_value("x-token") {
        Some(t) if t.starts_with("demo") => Reply::status(200),
        Some(t) if t.starts_with("fail") => Reply::status(500),
        Some(t) if t.starts_with("slow") => Reply::Delay(
            SLOW_AUTH,
            Response {
                status: 200,
                ..Default::default()
            },
        ),
        _ => Reply::with(
            401,
            &[("www-authenticate", "Bearer realm=\"soak\"")],
            "denied\n",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_its_shares_and_each_kind_its_answer() {
        let mut counts = [0; Kind::ALL.len()];
        for i in 0..1000 {
            let k = Kind::ALL.iter().position(|x| *x == kind(i)).unwrap_or(99);
            counts[k] += 1;
        }
        for (k, kind) in Kind::ALL.iter().enumerate() {
            assert_eq!(counts[k], kind.share() * 10, "{kind:?}");
        }
        assert_eq!(Kind::ALL.iter().map(|k| k.share()).sum::<usize>(), 100);
        let all = [
            "response-headers",
            "header-authorization",
            "basic-auth",
            "dispatch-auth",
        ];
        assert_eq!(Kind::BasicDenied.expected(&all), 401);
        assert_eq!(Kind::AuthFailed.expected(&all), 403);
        assert_eq!(Kind::AuthFailed.expected(&all[..3]), 200);
        assert_eq!(Kind::Hit.expected(&[]), 200);
        // New keys are new: two requests of the kind never share a path or token.
        let a = Kind::NewKey.request(5);
        let b = Kind::NewKey.request(105);
        assert_ne!(a.path, b.path);
        let a = Kind::AuthDeniedNewKey.request(6);
        let b = Kind::AuthDeniedNewKey.request(106);
        assert_ne!(a.header_value("x-token"), b.header_value("x-token"));
    }
}
