//! The JSON Schema of jwt-auth's own field types, with the limits their
//! deserializers check (feature `schema`, for xtask; never in the module).

use super::*;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// An RFC 9110 token.
const TOKEN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// A string schema, inlined where it is used.
macro_rules! string_schema {
    ($type:ty, $name:literal, $($schema:tt)+) => {
        impl JsonSchema for $type {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($($schema)+)
            }
        }
    };
}

string_schema!(Realm, "Realm", {"type": "string", "minLength": 1, "pattern": "^[^\"\\\\\\u0000-\\u001f\\u007f-\\u009f]+$"});
string_schema!(TokenHeader, "TokenHeader", {
    "type": "string",
    "pattern": TOKEN,
    "not": {"pattern": "^([Hh][Oo][Ss][Tt]|[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]|[Kk][Ee][Ee][Pp]-[Aa][Ll][Ii][Vv][Ee]|[Pp][Rr][Oo][Xx][Yy]-[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]|[Tt][Ee]|[Uu][Pp][Gg][Rr][Aa][Dd][Ee])$"},
});
string_schema!(TokenName, "TokenName", {"type": "string", "pattern": TOKEN});
string_schema!(ClaimPath, "ClaimPath", {"type": "string", "pattern": "^[^.]+(\\.[^.]+)*$"});
string_schema!(ClaimHeader, "ClaimHeader", {
    "type": "string",
    "pattern": TOKEN,
    "not": {"pattern": "^([Hh][Oo][Ss][Tt]|[Cc][Oo][Oo][Kk][Ii][Ee]|[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]|[Kk][Ee][Ee][Pp]-[Aa][Ll][Ii][Vv][Ee]|[Pp][Rr][Oo][Xx][Yy]-[Cc][Oo][Nn][Nn][Ee][Cc][Tt][Ii][Oo][Nn]|[Tt][Ee]|[Uu][Pp][Gg][Rr][Aa][Dd][Ee])$"},
});
string_schema!(JwksPath, "JwksPath", {"type": "string", "pattern": "^/[^ \\u0000-\\u001f\\u007f-\\u009f]*$"});

impl JsonSchema for Providers {
    fn schema_name() -> Cow<'static, str> {
        "Providers".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_PROVIDERS,
            "propertyNames": {"minLength": 1, "maxLength": MAX_NAME, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"},
            "additionalProperties": generator.subschema_for::<ProviderSpec>(),
        })
    }
}
