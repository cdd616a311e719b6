//! `cargo xtask fuzz config_header_authorization`: see `fuzz::configs`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::configs::header_authorization);
