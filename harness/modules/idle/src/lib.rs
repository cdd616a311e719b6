//! idle: a test-only filter that is this project's adapter (`common::adapter`)
//! running a plugin that does nothing: no header read, `Continue` on the request
//! headers, no response side. `cargo xtask bench` sets it beside the SDK's empty
//! filter (`harness/modules/empty`), so the adapter's own cost per stream, which
//! every plugin pays, is in sight. Not a plugin: `cargo xtask build-all` never
//! builds it.

use common::plugin::{Cx, Plugin, Step};
use serde_json::Value;

common::export_plugin!(Idle);

pub struct Idle;

impl Plugin for Idle {
    const NAME: &'static str = "idle";
    type Config = ();
    type Stream = ();

    fn configure(_doc: &Value) -> Result<(), common::ConfigError> {
        Ok(())
    }

    fn on_request_headers(_config: &(), _stream: &mut (), _cx: &mut Cx<'_>) -> Step {
        Step::Continue
    }
}
