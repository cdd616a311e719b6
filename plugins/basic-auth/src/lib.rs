//! basic-auth: path- and method-scoped HTTP Basic authentication, configured with
//! the istio-ecosystem `basic_auth` schema. This file is the wasm adapter; the
//! decision is in `auth`, the config in `config`.

pub mod auth;
pub mod config;
mod local;
pub mod secret;

use auth::{Decision, MAX_OVERRIDES, METHOD_OVERRIDES};
use common::headers::is_spelling_of;
use common::path::{BAD_PATH_BODY, BAD_PATH_STATUS};
use common::plugin::{Cx, LocalRun, Map, Plugin, Step};
use config::Config;
use serde_json::Value;

common::export_plugin!(BasicAuth);

pub struct BasicAuth;

/// Fails closed when the host refuses a header change: forwarding the request
/// could let a spoofed user name through.
fn fail(cx: &mut Cx<'_>, what: &str, name: &str) -> Step {
    let id = cx.id;
    log::warn!("#{id} cannot {what} '{name}': denied");
    cx.host.send_response(
        500,
        "basic_auth_header_update_failed",
        &[],
        b"Internal error\n",
    );
    Step::Stop
}

impl Plugin for BasicAuth {
    const NAME: &'static str = "basic-auth";
    type Config = Config;
    type Stream = ();

    fn configure(doc: &Value) -> Result<Config, common::ConfigError> {
        Config::from_value(doc)
    }

    fn on_request_headers(config: &Config, _stream: &mut (), cx: &mut Cx<'_>) -> Step {
        let headers = cx.host.request_headers();
        let forward = config.forward_username_header.as_deref();
        let (mut method, mut path): (&[u8], &[u8]) = (b"", b"");
        // The first two Authorization values: `decide` refuses a second one, and
        // needs no more.
        let mut authorization: [Option<&[u8]>; 2] = [None, None];
        let mut overrides: [&[u8]; MAX_OVERRIDES] = [b""; MAX_OVERRIDES];
        let mut override_count = 0;
        // Client-sent copies of the user-name header, in any spelling; almost
        // always none, so this allocates nothing.
        let mut spoofed: Vec<&[u8]> = Vec::new();
        for (name, value) in headers.pairs() {
            match name {
                b":method" => method = value,
                b":path" => path = value,
                b"authorization" => match authorization {
                    [None, _] => authorization = [Some(value), None],
                    [first, None] => authorization = [first, Some(value)],
                    _ => {}
                },
                _ => {
                    if forward.is_some_and(|f| is_spelling_of(name, f)) && !spoofed.contains(&name)
                    {
                        spoofed.push(name);
                    }
                    if METHOD_OVERRIDES.iter().any(|o| is_spelling_of(name, o)) {
                        if let Some(slot) = overrides.get_mut(override_count) {
                            *slot = value;
                            override_count += 1;
                        }
                    }
                }
            }
        }
        for name in spoofed {
            // A spelling of a valid token is ASCII.
            let name = std::str::from_utf8(name).unwrap_or_default();
            if !cx.host.remove(Map::Request, name) {
                return fail(cx, "remove", name);
            }
        }
        // Logs below name the decision only: never the header or any part of it.
        let id = cx.id;
        let authorization = authorization.into_iter().flatten();
        let overrides = overrides.get(..override_count).unwrap_or_default();
        match auth::decide(config, method, overrides, path, authorization) {
            Decision::Pass => {
                log::debug!("#{id} no rule applies");
                Step::Continue
            }
            Decision::Allow(user) => {
                if let Some(name) = forward {
                    if !cx.host.add(Map::Request, name, user.as_bytes()) {
                        return fail(cx, "set", name);
                    }
                }
                log::debug!("#{id} credentials accepted");
                Step::Continue
            }
            Decision::Deny(denial) => {
                log::debug!("#{id} denied: {}", denial.reason());
                let deny = if denial.is_missing() {
                    &config.missing
                } else {
                    &config.wrong
                };
                cx.host.send_deny(deny);
                Step::Stop
            }
            Decision::BadPath(why) => {
                log::debug!("#{id} refused: {}", why.reason());
                cx.host.send_response(
                    BAD_PATH_STATUS,
                    "basic_auth_bad_path",
                    &[],
                    BAD_PATH_BODY.as_bytes(),
                );
                Step::Stop
            }
        }
    }

    fn local_run(config: &Config, doc: &Value) -> LocalRun {
        local::run(config, doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::plugin::testing::{Effect, Mock};
    use common::plugin::{Configured, Instance};
    use serde_json::json;

    fn run(plugin: &Configured<BasicAuth>, host: &mut Mock) -> Step {
        let mut stream = plugin.new_stream();
        plugin.on_request_headers(stream.as_mut(), &mut Cx::new(host, 1))
    }

    #[test]
    fn spoofed_spellings_go_and_the_user_is_added() {
        let doc = json!({"basic_auth_rules": [{"prefix": "/a", "request_methods": ["GET"], "credentials": ["ok:test"]}],
                         "forward_username_header": "x-user"});
        let plugin = Configured::<BasicAuth>::new("", &doc).unwrap();
        let mut host = Mock::with_request(&[
            (":method", "GET"),
            (":path", "/a"),
            ("authorization", "Basic b2s6dGVzdA=="),
            ("x_user", "root"),
            ("x-user", "root"),
            ("x_user", "admin"),
        ]);
        assert_eq!(run(&plugin, &mut host), Step::Continue);
        assert_eq!(
            host.take(),
            [
                Effect::Remove(Map::Request, "x_user".into()),
                Effect::Remove(Map::Request, "x-user".into()),
                Effect::Add(Map::Request, "x-user".into(), "ok".into()),
            ]
        );
        assert_eq!(host.request_values("x-user"), ["ok"]);
        // A host that refuses the edit fails closed.
        let mut host =
            Mock::with_request(&[(":method", "GET"), (":path", "/b"), ("x-user", "root")]);
        host.refuse_edits = true;
        assert_eq!(run(&plugin, &mut host), Step::Stop);
        assert!(matches!(host.take().last(), Some(Effect::Respond(500, ..))));
    }

    #[test]
    fn a_bad_path_is_a_400() {
        let doc = json!({"basic_auth_rules": [{"prefix": "/a", "request_methods": ["GET"], "credentials": ["ok:test"]}]});
        let plugin = Configured::<BasicAuth>::new("", &doc).unwrap();
        let mut host = Mock::with_request(&[(":method", "GET"), (":path", "/x%2Fa")]);
        assert_eq!(run(&plugin, &mut host), Step::Stop);
        assert_eq!(
            host.take(),
            [Effect::Respond(
                400,
                "basic_auth_bad_path".into(),
                vec![],
                BAD_PATH_BODY.into()
            )]
        );
    }
}
