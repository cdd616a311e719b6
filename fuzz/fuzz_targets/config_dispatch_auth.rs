//! `cargo xtask fuzz config_dispatch_auth`: see `fuzz::configs`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::configs::dispatch_auth);
