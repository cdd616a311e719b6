//! `cargo xtask fuzz config_response_headers`: see `fuzz::configs`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::configs::response_headers);
