//! Finding a way to build wasm32-wasip1: rustup's target when its std is installed,
//! else Debian's rustc-web with `-Zbuild-std` (installed here when missing), because
//! `rustup target add` cannot be relied on (it hangs without its download server).

use crate::util::{apt_install, can_apt_install, output, which, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TARGET: &str = "wasm32-wasip1";

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";
const DEBIAN_LINKER: &str = "wasm-ld-22";
const WASI_LIBC: &str = "/usr/lib/wasm32-wasi";
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "lld-22",
    "wasi-libc",
];
// Installed alongside, so a fresh machine needs one apt-get run, not two.
const SHRINKER: &str = "binaryen";

/// How wasm modules get built on this machine.
pub enum Toolchain {
    /// The cargo that runs xtask, with rustup's wasm32-wasip1 std.
    Rustup,
    /// Debian's rustc-web building std from source.
    Debian,
}

impl Toolchain {
    /// Picks a toolchain, installing Debian's when nothing else works, and says which.
    pub fn find() -> Result<Self> {
        if rustup_std_installed() {
            println!("wasm toolchain: rustup's {TARGET} target (its std is installed)");
            return Ok(Toolchain::Rustup);
        }
        if debian_ready() {
            println!(
                "wasm toolchain: Debian rustc-web with -Zbuild-std (no {TARGET} std in the rustup toolchain)"
            );
            return Ok(Toolchain::Debian);
        }
        let mut tried = String::new();
        if can_apt_install() {
            println!("no {TARGET} std in the rustup toolchain and Debian's rustc-web is missing: installing it");
            let mut packages = DEBIAN_PACKAGES.to_vec();
            if which("wasm-opt").is_none() {
                packages.push(SHRINKER);
            }
            match apt_install(&packages) {
                Ok(()) if debian_ready() => {
                    println!("wasm toolchain: Debian rustc-web with -Zbuild-std (just installed)");
                    return Ok(Toolchain::Debian);
                }
                Ok(()) => tried = " (installed the Debian packages, yet parts are missing)".into(),
                Err(e) => tried = format!(" (installing the Debian packages failed: {e})"),
            }
        }
        Err(format!(
            "no way to build {TARGET} here{tried}. Either run `rustup target add {TARGET}` \
             (needs rustup's download server), or on Debian 12 as root: `apt-get install {}`",
            DEBIAN_PACKAGES.join(" ")
        ))
    }

    /// A `cargo build --release --target wasm32-wasip1` command for this toolchain.
    pub fn cargo_build(&self) -> Command {
        match self {
            Toolchain::Rustup => {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "--release", "--target", TARGET]);
                cmd
            }
            Toolchain::Debian => {
                let mut cmd = Command::new(DEBIAN_CARGO);
                cmd.args(["build", "--release", "--target", TARGET])
                    .arg("-Zbuild-std=std,panic_abort")
                    // Debian's cargo would otherwise find rustup's `rustc` proxy on
                    // PATH, which picks the stable toolchain without a wasm std.
                    .env("RUSTC", DEBIAN_RUSTC)
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .env_remove("RUSTDOC")
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("CARGO_TARGET_WASM32_WASIP1_LINKER", DEBIAN_LINKER)
                    .env("RUSTFLAGS", format!("-L {WASI_LIBC}"))
                    // Cargo prefers it to RUSTFLAGS, which would drop the -L above.
                    .env_remove("CARGO_ENCODED_RUSTFLAGS");
                cmd
            }
        }
    }
}

fn rustup_std_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Some(libdir) =
        output(Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]))
    else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(libdir.trim()) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("libstd-") && name.ends_with(".rlib")
    })
}

fn debian_ready() -> bool {
    Path::new(DEBIAN_RUSTC).is_file()
        && Path::new(DEBIAN_CARGO).is_file()
        && Path::new(DEBIAN_STD_SRC).is_dir()
        && Path::new(WASI_LIBC).is_dir()
        && which(DEBIAN_LINKER).is_some()
}

/// `wasm-opt` if binaryen is installed or can be; `None` means modules stay unshrunk.
/// Looked for once per run, so `run --watch` does not retry apt on every rebuild.
pub fn wasm_opt() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if which("wasm-opt").is_none() && can_apt_install() {
                if let Err(e) = apt_install(&[SHRINKER]) {
                    println!("warning: could not install binaryen ({e})");
                }
            }
            which("wasm-opt")
        })
        .clone()
}
