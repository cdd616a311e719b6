//! `cargo xtask fuzz config_basic_auth`: see `fuzz::configs`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::configs::basic_auth);
