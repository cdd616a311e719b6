//! End-to-end harness: writes an Envoy config for a list of plugins, as separate
//! filters or as chains of instances in the chain module (as `HARNESS_FORM`
//! says), starts a real Envoy on loopback (several at once), runs loopback
//! servers behind it (the echo upstream, auth services), makes keys and JWTs,
//! sends requests over
//! HTTP/1.1 or HTTP/2 (h2c, as `HARNESS_HTTP` says) or as raw bytes, and tears it
//! all down on drop, even when a test fails.

pub mod envoy;
pub mod h2c;
pub mod http;
pub mod jwt;
pub mod schema;
pub mod server;
pub mod stack;

pub use envoy::{scratch, Envoy};
pub use http::{Protocol, Request, Response};
pub use server::{Reply, Server};
pub use stack::{assert_config_refused, Form, Stack};
