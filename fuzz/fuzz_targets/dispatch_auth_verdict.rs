//! `cargo xtask fuzz dispatch_auth_verdict`: see `fuzz::dispatch_auth`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::dispatch_auth::verdict);
