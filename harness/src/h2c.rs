//! An HTTP/2 client over cleartext TCP with prior knowledge (h2c): the same
//! [`Request`] and [`Response`] as the HTTP/1.1 client, so any end-to-end test can
//! run over either protocol, and a [`Connection`] for what only HTTP/2 can do
//! (concurrent streams, cancelling one, a body streamed without a length and
//! ended by trailers). Built on `h2` with a current-thread tokio runtime per
//! connection: tests block on each exchange, so nothing is gained by sharing a
//! runtime, and [`send`]'s fresh connection per request keeps requests as
//! independent as the HTTP/1 client's `connection: close` does.

use crate::http::{Request, Response};
use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::SendStream;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::time::timeout;

/// The HTTP/1 client's limits: connecting, and waiting for the next bytes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that describe one HTTP/1 connection. HTTP/2 forbids them (RFC 9113
/// §8.2.2) and Envoy resets a stream that carries one, so they are not sent.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Sends `request` on a new h2c connection and reads the whole response. A
/// connection that fails, a refused handshake or a reset stream yields status 0,
/// as the HTTP/1 client does for a connection that closes without a response.
///
/// The request is what an HTTP/2 client would send for it: header names in
/// lowercase, `host` as `:authority` (`test.local` when absent, as over HTTP/1),
/// connection-specific headers dropped, each repeated header as a field of its
/// own, `content-length` added for a body. Values lose leading and trailing
/// whitespace, which HTTP/1's parser would have dropped too and HTTP/2 forbids.
///
/// Panics when the request cannot be expressed over HTTP/2 at all (an invalid
/// header name, say): such a test wants [`crate::http::send_raw`] instead.
pub fn send(addr: SocketAddr, request: &Request) -> Response {
    match Connection::open(addr) {
        Some(mut connection) => connection.send(request),
        None => Response::default(),
    }
}

/// One h2c connection, for what only HTTP/2 can do: several streams at once on
/// one connection, a stream cancelled while the connection stays up, a body
/// streamed in DATA frames with trailers.
pub struct Connection {
    // Current-thread: the connection's frames move only while a method of this
    // type blocks on the runtime, which is all a test needs.
    runtime: Runtime,
    client: SendRequest<Bytes>,
}

impl Connection {
    /// Connects and does the HTTP/2 handshake; `None` when either fails.
    pub fn open(addr: SocketAddr) -> Option<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("cannot start a tokio runtime: {e}"));
        let client = runtime.block_on(async {
            let tcp = within(CONNECT_TIMEOUT, TcpStream::connect(addr)).await?;
            let _ = tcp.set_nodelay(true);
            let (client, connection) = within(READ_TIMEOUT, h2::client::handshake(tcp)).await?;
            // The connection task moves the frames; dropping the runtime drops it,
            // which closes the socket.
            tokio::spawn(connection);
            Some(client)
        })?;
        Some(Connection { runtime, client })
    }

    /// Sends `request` as one stream and reads its response (status 0 if the
    /// stream is reset or the connection fails).
    pub fn send(&mut self, request: &Request) -> Response {
        self.send_all(std::slice::from_ref(request))
            .pop()
            .unwrap_or_default()
    }

    /// Opens a stream for each request, all before reading any response, and
    /// returns the responses in the order of `requests`, however they arrived.
    pub fn send_all(&mut self, requests: &[Request]) -> Vec<Response> {
        let heads: Vec<_> = requests.iter().map(head_or_panic).collect();
        let client = &self.client;
        self.runtime.block_on(async {
            let mut readers = Vec::new();
            for (head, body) in heads {
                let started = start(client, head, body).await;
                // Each response is read by a task of its own, so an unread one
                // cannot hold up the others behind the connection's window.
                readers.push(tokio::spawn(async move { read(started?.0).await }));
            }
            let mut responses = Vec::new();
            for reader in readers {
                responses.push(reader.await.ok().flatten().unwrap_or_default());
            }
            responses
        })
    }

    /// Sends `request`'s headers, then after `delay` its body, then `trailers`
    /// (when there are any) to end the stream, as a client streaming a body
    /// does: no `content-length` is added. Reads the response, which may come
    /// before the body is sent.
    pub fn send_streamed(
        &mut self,
        request: &Request,
        delay: Duration,
        trailers: &[(&str, &str)],
    ) -> Response {
        let head = head(request, false).unwrap_or_else(|why| cannot_send(request, &why));
        let body = Bytes::copy_from_slice(&request.body);
        let mut trailer_map = http::HeaderMap::new();
        for (name, value) in trailers {
            let field = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok())
                .unwrap_or_else(|| cannot_send(request, &format!("trailer {name}: {value}")));
            trailer_map.append(field.0, field.1);
        }
        let client = &self.client;
        self.runtime
            .block_on(async {
                let mut client = within(READ_TIMEOUT, client.clone().ready()).await?;
                let (response, mut stream) = client.send_request(head, false).ok()?;
                tokio::time::sleep(delay).await;
                // Send errors are ignored: a peer that answered and reset the
                // stream early has a response to read all the same.
                let end = trailer_map.is_empty();
                if !body.is_empty() || end {
                    let _ = stream.send_data(body, end);
                }
                if !end {
                    let _ = stream.send_trailers(trailer_map);
                }
                read(response).await
            })
            .unwrap_or_default()
    }

    /// Sends `request`, waits up to `wait` for its response, then cancels the
    /// stream (RST_STREAM with CANCEL), as a client that gives up does. True if
    /// it was cancelled before any response came, false if a response came first
    /// (or the stream could not be opened).
    pub fn cancel_after(&mut self, request: &Request, wait: Duration) -> bool {
        let (head, body) = head_or_panic(request);
        let client = &self.client;
        self.runtime.block_on(async {
            let Some((response, stream)) = start(client, head, body).await else {
                return false;
            };
            let cancelled = timeout(wait, response).await.is_err();
            // Dropping the last handles of an open stream is what makes h2 reset it.
            drop(stream);
            // Let the connection task put the reset on the wire now, not at the
            // next request.
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancelled
        })
    }
}

fn head_or_panic(request: &Request) -> (http::Request<()>, Bytes) {
    let head = head(request, true).unwrap_or_else(|why| cannot_send(request, &why));
    (head, Bytes::copy_from_slice(&request.body))
}

fn cannot_send(request: &Request, why: &str) -> ! {
    panic!("cannot send {request:?} over HTTP/2: {why} (send it over HTTP/1.1)")
}

/// The request's pseudo-headers and fields, as h2 takes them; with
/// `content_length`, one for a body the request gives no length for.
fn head(request: &Request, content_length: bool) -> Result<http::Request<()>, String> {
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|e| e.to_string())?;
    let authority = request.header_value("host").unwrap_or("test.local").trim();
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(request.path.as_str())
        .build()
        .map_err(|e| format!("{authority:?} {:?}: {e}", request.path))?;
    let mut out = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(http::Version::HTTP_2)
        .body(())
        .map_err(|e| e.to_string())?;
    let headers = out.headers_mut();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        let value = value.trim_matches([' ', '\t']);
        // `te` may only say `trailers` over HTTP/2; anything else is hop-by-hop.
        let hop_by_hop = name == "te" && value != "trailers";
        if name == "host" || hop_by_hop || CONNECTION_SPECIFIC.contains(&name.as_str()) {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?}: {e}"))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|e| format!("header {name}: value {value:?}: {e}"))?;
        // `append`, not `insert`: each occurrence stays a field of its own on the wire.
        headers.append(name, value);
    }
    if content_length
        && !request.body.is_empty()
        && request.header_value("content-length").is_none()
    {
        headers.insert(http::header::CONTENT_LENGTH, request.body.len().into());
    }
    Ok(out)
}

/// Runs `future` unless it takes longer than `limit`; `None` for a time-out or
/// a failure alike, since either way the test gets no response.
async fn within<T, E>(limit: Duration, future: impl Future<Output = Result<T, E>>) -> Option<T> {
    timeout(limit, future).await.ok()?.ok()
}

/// Opens a stream for `head` and sends `body`; the response to wait for, and the
/// stream's sending half, which resets the stream if dropped before it ends.
async fn start(
    client: &SendRequest<Bytes>,
    head: http::Request<()>,
    body: Bytes,
) -> Option<(ResponseFuture, SendStream<Bytes>)> {
    let mut client = within(READ_TIMEOUT, client.clone().ready()).await?;
    let (response, mut stream) = client.send_request(head, body.is_empty()).ok()?;
    if !body.is_empty() {
        // h2 queues what the peer's window does not yet allow and sends it as
        // the window opens; the connection task does that while we wait.
        stream.send_data(body, true).ok()?;
    }
    Some((response, stream))
}

/// Reads a response whole: status, headers, every DATA frame to the end.
async fn read(response: ResponseFuture) -> Option<Response> {
    let response = within(READ_TIMEOUT, response).await?;
    let (parts, mut received) = response.into_parts();
    let mut body = Vec::new();
    // As the HTTP/1 client's socket timeout: 30 s without news, not 30 s in all.
    while let Some(chunk) = timeout(READ_TIMEOUT, received.data()).await.ok()? {
        let chunk = chunk.ok()?;
        // Give the window back, or a body larger than it would stall.
        let _ = received.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    Some(Response {
        status: parts.status.as_u16(),
        headers,
        body,
    })
}
