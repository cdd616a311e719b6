//! response-headers: sets, appends, adds-if-absent, overwrites and removes headers
//! on responses (and requests). This file joins the plugin interface; the
//! configuration is compiled in `config` into `plan`s that run against the
//! stream's header maps.

pub mod config;
pub mod plan;

use common::plugin::{Cx, Host, Map, Plugin, Step};
use config::Config;
use serde_json::Value;

common::export_plugin!(ResponseHeaders, response);

pub struct ResponseHeaders;

/// One of the stream's header maps behind the plan's [`plan::Headers`]. A failed
/// host call (the map is not available in this phase) leaves the map as it is:
/// there is nothing better to do with a message already on its way.
struct StreamHeaders<'a> {
    host: &'a mut dyn Host,
    map: Map,
}

impl plan::Headers for StreamHeaders<'_> {
    fn contains(&mut self, name: &str) -> bool {
        self.host.contains(self.map, name)
    }

    fn add(&mut self, name: &str, value: &str) {
        self.host.add(self.map, name, value.as_bytes());
    }

    fn replace(&mut self, name: &str, value: &str) {
        self.host.replace(self.map, name, value.as_bytes());
    }

    fn remove(&mut self, name: &str) {
        self.host.remove(self.map, name);
    }
}

impl Plugin for ResponseHeaders {
    const NAME: &'static str = "response-headers";
    type Config = Config;
    type Stream = ();
    const RESPONSE: bool = true;

    fn configure(doc: &Value) -> Result<Config, common::ConfigError> {
        Config::from_value(doc)
    }

    fn on_request_headers(config: &Config, _stream: &mut (), cx: &mut Cx<'_>) -> Step {
        let mut headers = StreamHeaders {
            host: &mut *cx.host,
            map: Map::Request,
        };
        config.request.apply(&mut headers);
        Step::Continue
    }

    fn on_response_headers(config: &Config, _stream: &mut (), cx: &mut Cx<'_>) -> Step {
        let mut headers = StreamHeaders {
            host: &mut *cx.host,
            map: Map::Response,
        };
        config.response.apply(&mut headers);
        Step::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::plugin::testing::{Effect, Mock};
    use common::plugin::{Configured, Instance};
    use serde_json::json;

    #[test]
    fn each_side_edits_its_own_map() {
        let doc = json!({"response_headers": [{"name": "x-frame-options", "value": "DENY", "action": "add_if_absent"}],
                         "request_headers": [{"name": "x-from", "value": "gw"}]});
        let plugin = Configured::<ResponseHeaders>::new("", &doc).unwrap();
        let mut host = Mock::new();
        host.response
            .push(("x-frame-options".into(), b"SAMEORIGIN".to_vec()));
        let mut stream = plugin.new_stream();
        let mut cx = Cx::new(&mut host, 1);
        assert_eq!(
            plugin.on_request_headers(stream.as_mut(), &mut cx),
            Step::Continue
        );
        assert_eq!(
            plugin.on_response_headers(stream.as_mut(), &mut cx),
            Step::Continue
        );
        assert_eq!(
            host.take(),
            [Effect::Replace(Map::Request, "x-from".into(), "gw".into())]
        );
    }
}
