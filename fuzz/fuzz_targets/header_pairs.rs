//! `cargo xtask fuzz header_pairs`: see `fuzz::headers`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::headers::run);
