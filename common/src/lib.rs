//! What at least two plugins share: reading JSON config with errors that name the
//! field, the deny response, header-name and header-value rules, and (on wasm) the
//! thin host helpers that carry a decision out.

pub mod config;
pub mod deny;
pub mod headers;
pub mod path;

pub mod host;

pub use config::{ConfigError, Fields, Node};
pub use deny::DenyResponse;
