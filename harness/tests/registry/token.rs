//! A token server for the registry's `token` authentication (the Docker/OCI
//! bearer flow): it checks the client's Basic login and answers a JWT granting
//! the scope asked for, signed RS256 by `openssl` with a key whose self-signed
//! certificate, in the JWT's `x5c`, the registry trusts (`rootcertbundle`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-issuer";

pub struct TokenServer {
    pub addr: SocketAddr,
    /// The certificate the registry checks tokens with.
    pub cert: PathBuf,
    /// Tokens issued, and logins refused.
    pub issued: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
}

impl TokenServer {
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=test token issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "openssl could not make the token key");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        assert!(der.status.success());
        let x5c = STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (issued2, refused2) = (issued.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let answer = answer(stream.try_clone().unwrap(), &expected, &key, &x5c);
                match answer {
                    Some(true) => issued2.fetch_add(1, Ordering::SeqCst),
                    Some(false) => refused2.fetch_add(1, Ordering::SeqCst),
                    None => 0,
                };
            }
        });
        TokenServer {
            addr,
            cert,
            issued,
            refused,
        }
    }

    /// The registry's `auth:` section for this server.
    pub fn registry_auth(&self) -> String {
        format!(
            "auth: {{token: {{realm: 'http://{}/token', service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {}}}}}\n",
            self.addr,
            self.cert.display()
        )
    }
}

/// Answers one request: Some(true) a token, Some(false) a refused login.
fn answer(mut stream: TcpStream, expected: &str, key: &Path, x5c: &str) -> Option<bool> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1)?;
    let authorized = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("authorization") && value.trim() == expected
        })
    });
    if !authorized {
        let _ = stream.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 23\r\nConnection: close\r\n\r\n{\"details\":\"bad login\"}",
        );
        return Some(false);
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let access: Vec<String> = query
        .split('&')
        .filter_map(|p| p.strip_prefix("scope="))
        .flat_map(|s| {
            let s = decode(s);
            s.split(' ').map(str::to_string).collect::<Vec<_>>()
        })
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
            Some(format!(
                "{{\"type\":\"{kind}\",\"name\":\"{name}\",\"actions\":[{}]}}",
                actions.join(",")
            ))
        })
        .collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let header = format!("{{\"typ\":\"JWT\",\"alg\":\"RS256\",\"x5c\":[\"{x5c}\"]}}");
    let claims = format!(
        "{{\"iss\":\"{ISSUER}\",\"sub\":\"ci\",\"aud\":\"{SERVICE}\",\"exp\":{},\"nbf\":{},\"iat\":{},\"jti\":\"{now}-{}\",\"access\":[{}]}}",
        now + 300,
        now - 10,
        now - 10,
        std::process::id(),
        access.join(",")
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    openssl.stdin.take()?.write_all(input.as_bytes()).ok()?;
    let signature = openssl.wait_with_output().ok()?;
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.stdout));
    let body = format!("{{\"token\":\"{token}\",\"expires_in\":300}}");
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    Some(true)
}

/// Percent-decoding, for the query's scope.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
