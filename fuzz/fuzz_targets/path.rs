//! `cargo xtask fuzz path`: see `fuzz::path`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::path::run);
