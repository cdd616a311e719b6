//! `cargo xtask fuzz config_chain`: see `fuzz::configs::chain`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::configs::chain);
