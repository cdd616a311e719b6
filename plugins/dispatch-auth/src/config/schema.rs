//! The JSON Schema of dispatch-auth's own field types, with the limits their
//! deserializers check (feature `schema`, for xtask; never in the module).

use super::*;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// An RFC 9110 token.
const TOKEN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// A call path: '/' first, no spaces, '#', control or non-ASCII characters.
const CALL_PATH: &str = "^/[\\u0021-\\u0022\\u0024-\\u007e]*$";

impl JsonSchema for HeadersToAdd {
    fn schema_name() -> Cow<'static, str> {
        "HeadersToAdd".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "maxProperties": MAX_ADDED,
            "propertyNames": {"pattern": TOKEN},
            "additionalProperties": {"type": "string", "pattern": "^[^\\r\\n\\u0000]*$"},
        })
    }
}

impl JsonSchema for CallPathText {
    fn schema_name() -> Cow<'static, str> {
        "CallPath".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": CALL_PATH})
    }
}

impl JsonSchema for PrefixPath {
    fn schema_name() -> Cow<'static, str> {
        "PrefixPath".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": format!("^$|{CALL_PATH}")})
    }
}

impl JsonSchema for Method {
    fn schema_name() -> Cow<'static, str> {
        "Method".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": TOKEN})
    }
}

impl JsonSchema for CacheBytes {
    fn schema_name() -> Cow<'static, str> {
        "CacheBytes".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "minimum": *CACHE_BYTES.start(),
            "maximum": *CACHE_BYTES.end(),
        })
    }
}
