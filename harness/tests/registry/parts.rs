//! The real parts the registry tests run: Debian's `docker-registry` on a free
//! loopback port with its config and storage in the test's directory, and the
//! commands (xtask, skopeo) run with a time limit.

use super::{PASSWORD, USER};
use sha2::{Digest, Sha256};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn env_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) => PathBuf::from(v),
        None => panic!("{var} is not set: run the registry tests with `cargo xtask test`"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A free loopback port (bound, then released for the registry to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running registry, its storage and config in the test's directory; killed
/// on drop.
pub struct Registry {
    child: Child,
    pub addr: SocketAddr,
}

impl Registry {
    /// With `htpasswd`, every request needs the login `USER`/`PASSWORD`
    /// (distribution takes htpasswd over plain HTTP too).
    pub fn start(dir: &Path, htpasswd: bool) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let auth = if htpasswd {
            // bcrypt's lowest cost: the registry checks it on every request.
            let hash = bcrypt::hash(PASSWORD, 4).unwrap();
            let file = dir.join("htpasswd");
            std::fs::write(&file, format!("{USER}:{hash}\n")).unwrap();
            format!(
                "auth: {{htpasswd: {{realm: test, path: {}}}}}\n",
                file.display()
            )
        } else {
            String::new()
        };
        Registry::start_with(dir, &auth)
    }

    /// With `auth` as the config's `auth:` section (or nothing).
    pub fn start_with(dir: &Path, auth: &str) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut config = format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\n\
             storage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: '{addr}'}}\n",
            dir.join("storage").display()
        );
        config.push_str(auth);
        let config_file = dir.join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(env_path("REGISTRY_BIN"))
            .arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {addr}: see {}",
                dir.join("registry.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`, killing it after 60 s so a hung push fails instead of hanging.
pub fn output_within_a_minute(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{cmd:?} still running after 60 s");
        }
    }
}
