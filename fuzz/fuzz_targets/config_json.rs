//! `cargo xtask fuzz config_json`: see `fuzz::json`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::json::run);
