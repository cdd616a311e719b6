//! What at least two plugins share: reading JSON config with errors that name the
//! field, the deny response, header-name and header-value rules, path rules, the
//! plugin interface and the chain that runs instances, the `log` crate's logger
//! over the host (plugins log with `log::debug!` and friends), and (on wasm) the
//! one adapter that carries a plugin's steps out through the host, and the
//! bounded cache with a VM-secret keyed hash (dispatch-auth's decisions, jwt-auth's
//! verified tokens).

mod abi;
pub mod adapter;
pub mod cache;
pub mod config;
pub mod deny;
mod export;
pub mod headers;
pub mod host;
pub mod logger;
pub mod path;
pub mod plugin;

pub use config::ConfigError;
pub use deny::DenyResponse;
pub use plugin::{CallResponse, Cx, Host, LocalRun, Map, Plugin, Step};
