//! `cargo xtask fuzz jwt_auth_token`: see `fuzz::jwt_auth`.
#![cfg_attr(fuzzing, no_main)]

fuzz::main!(fuzz::jwt_auth::token);
