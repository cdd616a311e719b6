//! Loopback HTTP servers for Envoy to talk to: the echo upstream, and any server a
//! test scripts with a handler (auth services that allow, deny, stall, or hang up).
//! Every request received is recorded so tests can count and inspect calls.

use crate::http::{read_request, write_response, Request, Response};
use serde_json::json;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a scripted server does with a request.
pub enum Reply {
    /// Answer with this response.
    Respond(Response),
    /// Wait, then answer (a slow service).
    Delay(Duration, Response),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Respond(Response {
            status,
            ..Default::default()
        })
    }

    /// A response with headers and a body.
    pub fn with(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
        Reply::Respond(Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        })
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server; it stops when dropped.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Starts a server on a free loopback port, answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let stop = stop.clone();
            let received = received.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let handler = handler.clone();
                    let received = received.clone();
                    let stop = stop.clone();
                    thread::spawn(move || serve(stream, &*handler, &received, &stop));
                }
            });
        }
        Server {
            addr,
            stop,
            received,
        }
    }

    /// The echo upstream: answers 200 with the request's method, path, headers and
    /// body as JSON. `/status/<code>` answers that code instead. Each request header
    /// `x-echo-header: <name>: <value>` becomes a response header, so a test can make
    /// the upstream return any header, repeated or not.
    pub fn echo() -> Self {
        Self::start(|req| Reply::Respond(echo_response(req)))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Request> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.received.lock().map(|r| r.len()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.received.lock() {
            r.clear();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(stream: TcpStream, handler: &Handler, received: &Mutex<Vec<Request>>, stop: &AtomicBool) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut r) = received.lock() {
            r.push(req.clone());
        }
        let response = match handler(&req) {
            Reply::Respond(resp) => resp,
            Reply::Delay(wait, resp) => {
                thread::sleep(wait);
                resp
            }
            Reply::Close => return,
        };
        if write_response(&mut writer, &response).is_err() {
            return;
        }
    }
}

/// The echo upstream's answer to `req`.
pub fn echo_response(req: &Request) -> Response {
    let status = req
        .path
        .strip_prefix("/status/")
        .and_then(|code| code.split(['?', '/']).next())
        .and_then(|code| code.parse().ok())
        .unwrap_or(200);
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    for (name, value) in &req.headers {
        if name.eq_ignore_ascii_case("x-echo-header") {
            if let Some((n, v)) = value.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    let body = json!({
        "method": req.method,
        "path": req.path,
        "headers": req.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&req.body),
    });
    Response {
        status,
        headers,
        body: body.to_string().into_bytes(),
    }
}
