//! What the client sees: a 304 denial comes without a body and leaves the
//! keep-alive connection usable.

use super::{auth_service, plugin_envoy};
use harness::http::Connection;
use harness::Request;
use serde_json::json;

#[test]
fn a_304_denial_comes_without_a_body_on_a_connection_that_still_works() {
    let auth = auth_service();
    let envoy = plugin_envoy(
        auth.addr(),
        json!({"path_prefix": "/check", "allowed_client_headers": ["etag", "www-authenticate"]}),
    );
    let mut conn = Connection::open(envoy.addr()).unwrap();
    for round in 0..2 {
        let resp = conn.send(&Request::get("/not-modified")).unwrap();
        assert_eq!(resp.status, 304, "round {round}");
        assert!(resp.body.is_empty(), "round {round}: {:?}", resp.text());
        assert_eq!(resp.header("etag"), Some("\"v1\""));
        assert!(
            resp.header("content-length").is_none_or(|l| l == "0"),
            "{:?}",
            resp.headers
        );
        // The next response on the same connection is read cleanly.
        let resp = conn.send(&Request::get("/allow")).unwrap();
        assert_eq!(resp.status, 200, "round {round}: {}", resp.text());
        assert_eq!(resp.echoed().path, "/allow");
    }
    assert_eq!(envoy.echo().count(), 2);
}
