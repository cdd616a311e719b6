//! A small HTTP/1.1 reader and writer on std's TcpStream, and the choice between
//! it and the HTTP/2 client ([`Protocol`]). Hand-rolled on purpose: tests must
//! send what real clients would refuse to (repeated or malformed headers, raw
//! bytes), and servers must misbehave on demand.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The protocol a client speaks to Envoy's listener, which serves both (its
/// connection manager's codec is `AUTO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, one request per connection.
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (h2c), one request per
    /// connection too; [`crate::h2c::Connection`] carries several.
    Http2,
}

impl Protocol {
    /// What `HARNESS_HTTP` asks for: `1.1` (the default) or `2`. `cargo xtask
    /// test` runs the plugin tests once with each. Panics on anything else, so a
    /// typo cannot quietly test HTTP/1.1 twice.
    pub fn from_env() -> Self {
        match std::env::var("HARNESS_HTTP") {
            Err(std::env::VarError::NotPresent) => Protocol::Http1,
            Ok(v) if v.is_empty() || v == "1.1" => Protocol::Http1,
            Ok(v) if v == "2" => Protocol::Http2,
            other => panic!("HARNESS_HTTP must be 1.1 or 2, got {other:?}"),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
        })
    }
}

/// A request to send, or one a server received.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The request as bytes on the wire: `Host` and `Connection: close` unless set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        if self.header_value("host").is_none() {
            out.extend_from_slice(b"host: test.local\r\n");
        }
        if self.header_value("connection").is_none() {
            out.extend_from_slice(b"connection: close\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !self.body.is_empty() && self.header_value("content-length").is_none() {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// Sends the request over HTTP/1.1 on a new connection and reads the whole
    /// response (only its head for HEAD, whose response announces a body it does
    /// not carry).
    pub fn send(&self, addr: SocketAddr) -> Response {
        if self.method.eq_ignore_ascii_case("HEAD") {
            return send_raw_with(addr, &self.to_bytes(), true);
        }
        send_raw(addr, &self.to_bytes())
    }

    /// Sends the request over HTTP/2 (h2c) on a new connection; see
    /// [`crate::h2c::send`] for how it is put on the wire.
    pub fn send_h2(&self, addr: SocketAddr) -> Response {
        crate::h2c::send(addr, self)
    }

    /// Sends the request over `protocol`.
    pub fn send_over(&self, protocol: Protocol, addr: SocketAddr) -> Response {
        match protocol {
            Protocol::Http1 => self.send(addr),
            Protocol::Http2 => self.send_h2(addr),
        }
    }
}

/// A response received (or, in a server, one to send).
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What the echo upstream saw: the request it answered, parsed from its JSON body.
    /// Panics (failing the test) when the body is not the echo's JSON, e.g. because a
    /// plugin answered instead.
    pub fn echoed(&self) -> Request {
        let doc: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not an echo response ({e}): {} {}",
                self.status,
                self.text()
            )
        });
        let text = |key: &str| doc[key].as_str().unwrap_or_default().to_string();
        let headers = doc["headers"]
            .as_array()
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|p| {
                        let s = |i: usize| p[i].as_str().unwrap_or_default().to_string();
                        (s(0), s(1))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Request {
            method: text("method"),
            path: text("path"),
            headers,
            body: text("body").into_bytes(),
        }
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends raw bytes on a new connection and reads one response. A connection that
/// closes without a response yields status 0, so a test can assert on it.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    send_raw_with(addr, bytes, false)
}

fn send_raw_with(addr: SocketAddr, bytes: &[u8], head_only: bool) -> Response {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Response::default();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if stream.write_all(bytes).is_err() {
        return Response::default();
    }
    let mut reader = BufReader::new(stream);
    if head_only {
        return read_head(&mut reader)
            .and_then(|(first, headers)| {
                let status = first.split_whitespace().nth(1)?.parse().ok()?;
                Some(Response {
                    status,
                    headers,
                    body: Vec::new(),
                })
            })
            .unwrap_or_default();
    }
    read_response(&mut reader).unwrap_or_default()
}

/// A keep-alive client connection, for sending many requests cheaply (benchmarks,
/// load loops).
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let writer = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        writer.set_read_timeout(Some(Duration::from_secs(30)))?;
        writer.set_nodelay(true)?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Connection { reader, writer })
    }

    /// Sends `request` (with `connection: keep-alive` unless it says otherwise) and
    /// reads the response; `None` when the connection broke.
    pub fn send(&mut self, request: &Request) -> Option<Response> {
        let mut request = request.clone();
        if request.header_value("connection").is_none() {
            request
                .headers
                .push(("connection".into(), "keep-alive".into()));
        }
        self.writer.write_all(&request.to_bytes()).ok()?;
        read_head(&mut self.reader).and_then(|(first, headers)| {
            let status = first.split_whitespace().nth(1)?.parse().ok()?;
            let body = read_body(&mut self.reader, &headers, false)?;
            Some(Response {
                status,
                headers,
                body,
            })
        })
    }
}

/// Reads the head of a message: the first line and the headers.
fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    // Skip stray blank lines between keep-alive messages.
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let first = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut raw = Vec::new();
        if reader.read_until(b'\n', &mut raw).ok()? == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Some((first, headers))
}

fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    until_close: bool,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if find(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = find(headers, "content-length") {
        let len: usize = len.parse().ok()?;
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if until_close {
        reader.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

pub fn read_response(reader: &mut impl BufRead) -> Option<Response> {
    let (first, headers) = read_head(reader)?;
    let status = first.split_whitespace().nth(1)?.parse().ok()?;
    let body = read_body(reader, &headers, true)?;
    Some(Response {
        status,
        headers,
        body,
    })
}

pub fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let (first, headers) = read_head(reader)?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let body = read_body(reader, &headers, false)?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

pub fn write_response(stream: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        _ => "Status",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    stream.write_all(&out)?;
    stream.flush()
}
