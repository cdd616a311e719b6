//! What an auth-service answer means: allow (2xx) with the headers to copy onto
//! the request, deny (any other status below 500) as the service sent it, or an
//! error (no answer, 5xx, nothing parseable) that `failure_mode_allow` decides,
//! unless it is overload, which is never let through.

use crate::cache::{heap, Weight};
use crate::config::Config;
use common::deny::must_not_have_body;
use std::fmt;

/// A decision the auth service made; the only thing the cache stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Headers from the auth response to set on the request, names lowercase, in
    /// the order received (a repeated header keeps every value).
    Allow { headers: Vec<(String, Vec<u8>)> },
    /// The denial to answer with, as the auth service sent it.
    Deny {
        status: u32,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
}

impl Verdict {
    /// Bytes of header names, values and body, to keep large denials out of the
    /// cache.
    pub fn size(&self) -> usize {
        let headers =
            |h: &[(String, Vec<u8>)]| -> usize { h.iter().map(|(n, v)| n.len() + v.len()).sum() };
        match self {
            Verdict::Allow { headers: h } => headers(h),
            Verdict::Deny {
                headers: h, body, ..
            } => headers(h) + body.len(),
        }
    }

    /// Bytes this verdict holds on the heap, each allocation's overhead included.
    fn heap_bytes(&self) -> usize {
        let headers = |h: &Vec<(String, Vec<u8>)>| -> usize {
            heap::<(String, Vec<u8>)>(h.capacity())
                + h.iter()
                    .map(|(n, v)| heap::<u8>(n.capacity()) + heap::<u8>(v.capacity()))
                    .sum::<usize>()
        };
        match self {
            Verdict::Allow { headers: h } => headers(h),
            Verdict::Deny {
                headers: h, body, ..
            } => headers(h) + heap::<u8>(body.capacity()),
        }
    }
}

/// A cached verdict (in an `Rc`, see `common::cache`'s `Weight for Rc<T>`) costs
/// what it holds.
impl Weight for Verdict {
    fn weight(&self) -> usize {
        self.heap_bytes()
    }
}

/// Why the auth cluster could not take a call. The plugin never lets a request
/// through for these, whatever `failure_mode_allow` says: an attacker can cause
/// overload at will (clients that leave keep their calls running), and a
/// failure mode an attacker can trigger is a way past the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// The plugin's own cap: this many calls were already out.
    Cap(usize),
    /// Envoy would not start the call (`InternalFailure`). Envoy 1.40 answers so
    /// when the cluster's circuit breaker (`max_requests`,
    /// `max_pending_requests`) overflows as the call is made, and also when the
    /// cluster has no healthy host: the plugin cannot tell the two apart.
    Refused,
    /// Envoy answered the call itself with `503` and `x-envoy-overloaded: true`:
    /// a circuit breaker overflowed after the call was queued.
    Envoy,
}

/// Why a call produced no decision. Its text goes to the warn log, so it never
/// carries request data, only what Envoy or the status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `dispatch_http_call` refused the call (unknown cluster, say).
    Dispatch(&'static str),
    /// The call ended without a response: reset, or a response over Envoy's limit.
    NoResponse,
    /// The response carried no usable `:status`.
    BadStatus,
    /// A status that is an error: 5xx (with Envoy's own reason when it wrote the
    /// reply itself, e.g. `upstream request timeout`), or outside 200..=599.
    Status(u32, Option<String>),
    /// The auth cluster is overloaded; never let through.
    Overloaded(Overload),
}

impl Failure {
    pub fn is_overload(&self) -> bool {
        matches!(self, Failure::Overloaded(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Dispatch(why) => write!(f, "the call could not be sent: {why}"),
            Failure::NoResponse => f.write_str(
                "no response (connection reset, or the response exceeded Envoy's buffer limit)",
            ),
            Failure::BadStatus => f.write_str("the response has no valid :status"),
            Failure::Status(status, Some(reason)) => write!(f, "status {status}: {reason}"),
            Failure::Status(status, None) => write!(f, "the auth service answered {status}"),
            Failure::Overloaded(Overload::Cap(n)) => {
                write!(f, "not sent: {n} calls are out, the max_pending_calls cap")
            }
            Failure::Overloaded(Overload::Refused) => f.write_str(
                "Envoy refused to start the call (InternalFailure): the cluster's circuit \
                 breaker overflowed or it has no healthy host",
            ),
            Failure::Overloaded(Overload::Envoy) => f.write_str(
                "Envoy's circuit breaker for the cluster overflowed (503, x-envoy-overloaded)",
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Decided(Verdict),
    Failed(Failure),
}

fn parse_status(value: &[u8]) -> Option<u32> {
    if value.is_empty() || value.len() > 3 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value
        .iter()
        .try_fold(0u32, |n, d| Some(n * 10 + u32::from(d - b'0')))
}

/// Envoy answers a failed call itself (timeout, connection failure, no healthy
/// host) with a short text body; quoting it tells the operator what happened.
fn envoy_reason(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim_end();
    let envoy = text.starts_with("upstream ") || text.starts_with("no healthy upstream");
    let plain = text.len() <= 300 && text.bytes().all(|b| (b' '..=b'~').contains(&b));
    (envoy && plain).then(|| text.to_string())
}

/// `(name, value)` pairs of `headers` whose name is in `names`, in order.
fn pick<'a>(headers: &[(&'a [u8], &'a [u8])], names: &[String]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter_map(|(n, v)| {
            names
                .iter()
                .find(|name| name.as_bytes().eq_ignore_ascii_case(n))
                .map(|name| (name.clone(), v.to_vec()))
        })
        .collect()
}

/// Envoy marks the replies it makes when a circuit breaker or its overload
/// manager refuses a request with this header.
fn overloaded(headers: &[(&[u8], &[u8])]) -> bool {
    headers
        .iter()
        .any(|(n, v)| *n == b"x-envoy-overloaded" && v.eq_ignore_ascii_case(b"true"))
}

/// Reads an auth-service response; `body` is read only when the answer uses it
/// (a denial, or an error whose reason Envoy wrote). No headers at all means the
/// call failed without one (the host reports a reset that way).
pub fn classify(
    config: &Config,
    headers: &[(&[u8], &[u8])],
    body: impl FnOnce() -> Vec<u8>,
) -> Outcome {
    if headers.is_empty() {
        return Outcome::Failed(Failure::NoResponse);
    }
    let status = headers
        .iter()
        .find(|(n, _)| *n == b":status")
        .and_then(|(_, v)| parse_status(v));
    let Some(status) = status else {
        return Outcome::Failed(Failure::BadStatus);
    };
    match status {
        200..=299 => Outcome::Decided(Verdict::Allow {
            headers: pick(headers, &config.allowed_upstream_headers),
        }),
        // A 304 carries no body (RFC 9110); Envoy would send one anyway, and a
        // keep-alive client would read it as the start of the next response.
        300..=499 => Outcome::Decided(Verdict::Deny {
            status,
            headers: pick(headers, &config.allowed_client_headers),
            body: if must_not_have_body(status) {
                Vec::new()
            } else {
                body()
            },
        }),
        500..=599 if overloaded(headers) => Outcome::Failed(Failure::Overloaded(Overload::Envoy)),
        500..=599 => Outcome::Failed(Failure::Status(status, envoy_reason(&body()))),
        _ => Outcome::Failed(Failure::Status(status, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            br#"{"cluster": "auth", "allowed_upstream_headers": ["x-user-id", "x-groups"],
                 "allowed_client_headers": ["www-authenticate"]}"#,
        )
        .unwrap()
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static [u8], &'static [u8])> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect()
    }

    fn hv(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn table() {
        let c = config();
        let allow = |p: &[(&str, &str)]| Outcome::Decided(Verdict::Allow { headers: hv(p) });
        let deny = |status, p: &[(&str, &str)], body: &str| {
            Outcome::Decided(Verdict::Deny {
                status,
                headers: hv(p),
                body: body.as_bytes().to_vec(),
            })
        };
        let failed = |status, reason: Option<&str>| {
            Outcome::Failed(Failure::Status(status, reason.map(str::to_string)))
        };
        type Case<'a> = (&'a str, Vec<(&'a [u8], &'a [u8])>, &'a str, Outcome);
        let cases: Vec<Case> = vec![
            (
                "200 copies only allowed upstream headers, repeats kept",
                h(&[(":status", "200"), ("x-user-id", "7"), ("x-other", "n"), ("x-groups", "a"), ("x-groups", "b")]),
                "ignored",
                allow(&[("x-user-id", "7"), ("x-groups", "a"), ("x-groups", "b")]),
            ),
            ("204 is an allow", h(&[(":status", "204")]), "", allow(&[])),
            (
                "401 with www-authenticate",
                h(&[(":status", "401"), ("www-authenticate", "Bearer"), ("x-user-id", "7")]),
                "who are you",
                deny(401, &[("www-authenticate", "Bearer")], "who are you"),
            ),
            ("302 is a denial", h(&[(":status", "302")]), "", deny(302, &[], "")),
            ("403 body", h(&[(":status", "403")]), "no", deny(403, &[], "no")),
            ("500 is an error", h(&[(":status", "500")]), "boom", failed(500, None)),
            (
                "Envoy's timeout reply is quoted",
                h(&[(":status", "504")]),
                "upstream request timeout",
                failed(504, Some("upstream request timeout")),
            ),
            (
                "Envoy's connect failure is quoted",
                h(&[(":status", "503")]),
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
                failed(503, Some("upstream connect error or disconnect/reset before headers. reset reason: connection failure")),
            ),
            ("no headers: reset", vec![], "", Outcome::Failed(Failure::NoResponse)),
            ("no status", h(&[("x-user-id", "7")]), "", Outcome::Failed(Failure::BadStatus)),
            ("status not a number", h(&[(":status", "2x0")]), "", Outcome::Failed(Failure::BadStatus)),
            ("status too long", h(&[(":status", "2000")]), "", Outcome::Failed(Failure::BadStatus)),
            ("1xx is an error", h(&[(":status", "101")]), "", failed(101, None)),
            ("600 is an error", h(&[(":status", "600")]), "", failed(600, None)),
            (
                "a 304 denial loses its body",
                h(&[(":status", "304"), ("www-authenticate", "Bearer")]),
                "not modified",
                deny(304, &[("www-authenticate", "Bearer")], ""),
            ),
            ("a 305 keeps it", h(&[(":status", "305")]), "use proxy", deny(305, &[], "use proxy")),
            (
                "Envoy's overflow reply is overload",
                h(&[(":status", "503"), ("x-envoy-overloaded", "true"), ("content-type", "text/plain")]),
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
                Outcome::Failed(Failure::Overloaded(Overload::Envoy)),
            ),
            (
                "any 5xx so marked is overload",
                h(&[(":status", "500"), ("x-envoy-overloaded", "TRUE")]),
                "",
                Outcome::Failed(Failure::Overloaded(Overload::Envoy)),
            ),
            (
                "a 503 without the mark is a plain error",
                h(&[(":status", "503"), ("x-envoy-overloaded", "false")]),
                "",
                failed(503, None),
            ),
            (
                "a denial with the mark is still a denial",
                h(&[(":status", "403"), ("x-envoy-overloaded", "true")]),
                "no",
                deny(403, &[], "no"),
            ),
        ];
        for (name, headers, body, expected) in cases {
            assert_eq!(
                classify(&c, &headers, || body.as_bytes().to_vec()),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn failure_texts() {
        let cases = [
            (
                Failure::Dispatch("unknown cluster"),
                "the call could not be sent: unknown cluster",
            ),
            (Failure::Status(500, None), "the auth service answered 500"),
            (
                Failure::Status(504, Some("upstream request timeout".into())),
                "status 504: upstream request timeout",
            ),
            (Failure::BadStatus, "the response has no valid :status"),
            (
                Failure::Overloaded(Overload::Cap(8)),
                "not sent: 8 calls are out, the max_pending_calls cap",
            ),
            (
                Failure::Overloaded(Overload::Envoy),
                "Envoy's circuit breaker for the cluster overflowed (503, x-envoy-overloaded)",
            ),
            (
                Failure::Overloaded(Overload::Refused),
                "Envoy refused to start the call (InternalFailure): the cluster's circuit breaker overflowed or it has no healthy host",
            ),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text);
        }
        assert!(Failure::NoResponse.to_string().starts_with("no response"));
    }

    #[test]
    fn bodies_that_are_not_envoy_text_are_not_quoted() {
        for body in ["secret token abc", "upstream \u{1}x", ""] {
            assert_eq!(envoy_reason(body.as_bytes()), None, "{body:?}");
        }
        assert_eq!(envoy_reason(&[0xff]), None);
        let long = format!("upstream {}", "x".repeat(400));
        assert_eq!(envoy_reason(long.as_bytes()), None);
    }

    #[test]
    fn sizes() {
        let v = Verdict::Deny {
            status: 401,
            headers: hv(&[("ab", "cde")]),
            body: b"1234".to_vec(),
        };
        assert_eq!(v.size(), 9);
        assert_eq!(
            Verdict::Allow {
                headers: hv(&[("x", "yz")])
            }
            .size(),
            3
        );
    }

    #[test]
    fn weights_count_every_allocation() {
        use crate::cache::ALLOC_OVERHEAD;
        use std::rc::Rc;
        let rc_box = std::mem::size_of::<(usize, usize, Verdict)>() + ALLOC_OVERHEAD;
        let pair = std::mem::size_of::<(String, Vec<u8>)>();
        let deny = Rc::new(Verdict::Deny {
            status: 401,
            headers: hv(&[("ab", "cde")]),
            body: vec![b'x'; 1000],
        });
        let expected = rc_box
            + (pair + ALLOC_OVERHEAD)
            + (2 + ALLOC_OVERHEAD)
            + (3 + ALLOC_OVERHEAD)
            + (1000 + ALLOC_OVERHEAD);
        assert_eq!(deny.weight(), expected);
        let allow = Rc::new(Verdict::Allow { headers: vec![] });
        assert_eq!(allow.weight(), rc_box, "an empty list allocates nothing");
    }

    #[test]
    fn the_body_is_read_only_when_used() {
        let c = config();
        let never = || -> Vec<u8> { panic!("body read") };
        for status in ["200", "204", "304"] {
            let _ = classify(&c, &h(&[(":status", status)]), never);
        }
        let _ = classify(
            &c,
            &h(&[(":status", "503"), ("x-envoy-overloaded", "true")]),
            never,
        );
        let _ = classify(&c, &[], never);
    }
}
