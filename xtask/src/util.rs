//! Small helpers the commands share: the project root, running a command, errors.

use std::path::{Path, PathBuf};
use std::process::Command;

pub type Result<T, E = String> = std::result::Result<T, E>;

/// A command's arguments, read flag by flag; errors name the command.
pub struct Args<'a> {
    command: &'static str,
    rest: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    pub fn new(command: &'static str, args: &'a [String]) -> Self {
        Args {
            command,
            rest: args.iter(),
        }
    }

    /// The next flag (or stray argument), if any.
    pub fn flag(&mut self) -> Option<&'a str> {
        self.rest.next().map(String::as_str)
    }

    /// The value that must follow `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        self.rest
            .next()
            .cloned()
            .ok_or_else(|| format!("{}: {flag} needs a value", self.command))
    }

    /// The value that must follow `flag`, parsed; `expected` says what would do.
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str, expected: &str) -> Result<T> {
        let value = self.value(flag)?;
        value
            .parse()
            .map_err(|_| format!("{}: {flag} {value}: expected {expected}", self.command))
    }

    /// The error for an argument the command does not take.
    pub fn unexpected(&self, arg: &str) -> String {
        format!("{}: unexpected argument '{arg}'", self.command)
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `cmd` with inherited output; an error names the command and its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs `cmd` and returns its standard output, or `None` if it could not run or failed.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// True when this machine can install Debian packages itself: Debian, apt-get, root.
pub fn can_apt_install() -> bool {
    Path::new("/etc/debian_version").exists()
        && which("apt-get").is_some()
        && output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// `apt-get update` then `apt-get install -y <packages>`, non-interactively.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    println!("installing Debian packages: {}", packages.join(" "));
    let apt_get = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        // On a fresh machine unattended-upgrades often holds the lock for a while.
        cmd.args(["-q", "-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    // One unreachable mirror fails the update, yet the lists already there may
    // well hold the packages: try the install anyway.
    let updated = run(&mut apt_get(&["update"]));
    if let Err(e) = &updated {
        println!("warning: {e}; trying the install with the package lists there are");
    }
    run(apt_get(&["install", "-y", "--no-install-recommends"]).args(packages)).map_err(|e| {
        match updated {
            Err(update) => format!("{e} (after {update})"),
            Ok(()) => e,
        }
    })
}

/// The workspace version, which OCI tags carry (the image layout and the gateways'
/// oci:// urls both name it, so it lives below both).
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[cfg(test)]
mod tests {
    use super::Args;

    #[test]
    fn args_read_flags_and_values_and_name_the_command_in_errors() {
        let given: Vec<String> = ["--port", "80", "--watch", "--port", "x", "--gateway"]
            .map(String::from)
            .to_vec();
        let mut args = Args::new("run", &given);
        assert_eq!(args.flag(), Some("--port"));
        assert_eq!(args.parsed::<u16>("--port", "0..=65535"), Ok(80));
        assert_eq!(args.flag(), Some("--watch"));
        assert_eq!(
            args.unexpected("--watch"),
            "run: unexpected argument '--watch'"
        );
        assert_eq!(args.flag(), Some("--port"));
        assert_eq!(
            args.parsed::<u16>("--port", "0..=65535"),
            Err("run: --port x: expected 0..=65535".to_string())
        );
        assert_eq!(args.flag(), Some("--gateway"));
        assert_eq!(
            args.value("--gateway"),
            Err("run: --gateway needs a value".to_string())
        );
        assert_eq!(args.flag(), None);
    }
}
