//! Finding the registry tests' tools: Debian's `docker-registry` (the CNCF
//! distribution registry, a real one to push to) and `skopeo` (an independent
//! client to read the images back), and `openssl` (the token test's signing key),
//! installed with apt when missing.

use crate::util::{apt_install, can_apt_install, which, Result};
use std::path::PathBuf;

/// (binary, Debian package).
const PACKAGES: [(&str, &str); 3] = [
    ("docker-registry", "docker-registry"),
    ("skopeo", "skopeo"),
    ("openssl", "openssl"),
];

/// The registry and skopeo binaries, installing Debian's packages when one is
/// missing and this machine can. Prints what it uses.
pub fn find() -> Result<(PathBuf, PathBuf)> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() && can_apt_install() {
        apt_install(&missing)?;
    }
    let found = |bin: &str| {
        which(bin).ok_or_else(|| {
            format!(
                "no {bin} on PATH for the registry tests: on Debian 12 as root, \
                 `apt-get install {}`",
                PACKAGES.map(|(_, p)| p).join(" ")
            )
        })
    };
    let (registry, skopeo) = (found("docker-registry")?, found("skopeo")?);
    found("openssl")?;
    println!(
        "registry: {}, skopeo: {}",
        registry.display(),
        skopeo.display()
    );
    Ok((registry, skopeo))
}
