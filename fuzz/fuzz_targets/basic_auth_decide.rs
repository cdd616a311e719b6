//! `cargo xtask fuzz basic_auth_decide`: see `fuzz::basic_auth`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::basic_auth::decide);
