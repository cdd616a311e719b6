//! header-authorization: denies a request unless a request header carries an
//! allowed value. This file joins the plugin interface; the decision is in
//! `authorize`, the config in `config`.

pub mod authorize;
pub mod config;

use authorize::Decision;
use common::plugin::{Cx, LocalRun, Plugin, Step};
use config::Config;
use serde_json::Value;

common::export_plugin!(HeaderAuthorization);

pub struct HeaderAuthorization;

impl Plugin for HeaderAuthorization {
    const NAME: &'static str = "header-authorization";
    type Config = Config;
    type Stream = ();

    fn configure(doc: &Value) -> Result<Config, common::ConfigError> {
        Config::from_value(doc)
    }

    fn on_request_headers(config: &Config, _stream: &mut (), cx: &mut Cx<'_>) -> Step {
        let headers = cx.host.request_headers();
        let (id, header) = (cx.id, &config.header);
        let outcome = match authorize::decide(config, headers.values(header)) {
            Decision::Allow => {
                log::debug!("#{id} header '{header}' allowed");
                return Step::Continue;
            }
            Decision::Missing => "missing",
            Decision::NotAllowed => "not allowed",
        };
        log::debug!("#{id} header '{header}' {outcome}: denied");
        cx.host.send_deny(&config.deny);
        Step::Stop
    }

    /// A request passes with the header's first accepted value.
    fn local_run(config: &Config, _doc: &Value) -> LocalRun {
        let value = config.values.first().cloned().unwrap_or_default();
        LocalRun::Gate(vec![(config.header.clone(), value)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::plugin::testing::{Effect, Mock};
    use common::plugin::{Configured, Instance};
    use serde_json::json;

    #[test]
    fn allows_or_answers_with_the_configured_denial() {
        let plugin = Configured::<HeaderAuthorization>::new(
            "",
            &json!({"header": "x-team", "values": ["red"]}),
        )
        .unwrap();
        let cases: &[(&[(&str, &str)], Step)] = &[
            (&[("x-team", "red")], Step::Continue),
            (&[("x-team", "blue")], Step::Stop),
            (&[], Step::Stop),
            (&[("x-team", "red"), ("x-team", "blue")], Step::Stop),
        ];
        for (headers, step) in cases {
            let mut host = Mock::with_request(headers);
            let mut stream = plugin.new_stream();
            let got = plugin.on_request_headers(stream.as_mut(), &mut Cx::new(&mut host, 3));
            assert_eq!(got, *step, "{headers:?}");
            let effects = host.take();
            if *step == Step::Stop {
                let body = "denied: header 'x-team' is missing or not allowed\n".to_string();
                assert_eq!(effects, [Effect::Respond(403, String::new(), vec![], body)]);
            } else {
                assert!(effects.is_empty(), "{effects:?}");
            }
        }
    }
}
