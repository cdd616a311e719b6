//! Header rules every plugin applies at configure time (RFC 9110 names, values
//! without CR/LF/NUL), and a zero-copy reader for the header map the host hands over.

/// True when `name` is an RFC 9110 token, the only valid shape of a header name.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A configured header name: a token, returned lowercase (Envoy keeps header names
/// lowercase, so comparing against a lowercase name needs no per-request folding).
pub fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("header name must not be empty".into());
    }
    if name.starts_with(':') {
        return Err(format!(
            "'{}' is a pseudo-header and cannot be used here",
            name.escape_debug()
        ));
    }
    if !is_token(name) {
        return Err(format!(
            "'{}' is not a valid header name (RFC 9110 token)",
            name.escape_debug()
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// True for the headers that frame a message body (`content-length`,
/// `transfer-encoding`; `name` lowercase). Envoy's codec writes them; a plugin that
/// set, copied or removed one would contradict the body actually sent.
pub fn is_framing(name: &str) -> bool {
    matches!(name, "content-length" | "transfer-encoding")
}

/// True for the connection-specific headers (`name` lowercase): they describe one
/// hop, Envoy manages them per connection, and HTTP/2 forbids them in a message
/// (RFC 9113 §8.2.2): Envoy 1.40 passes a `te` response header on, and every
/// HTTP/2 response that carries it then fails with a stream error.
pub fn is_connection_specific(name: &str) -> bool {
    matches!(
        name,
        "connection" | "keep-alive" | "proxy-connection" | "te" | "upgrade"
    )
}

/// A configured header value: CR, LF and NUL would split or truncate the header.
pub fn header_value(value: &str) -> Result<&str, &'static str> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err("header value must not contain CR, LF or NUL");
    }
    Ok(value)
}

/// True when `name` (lowercase, as a client sent it) is `canonical` spelled with
/// any mix of `-` and `_`. Envoy passes names with underscores by default
/// (`headers_with_underscores_action: ALLOW`), and CGI-style frameworks (WSGI,
/// Rack, PHP, Spring's CGI mapping) fold both to one variable (`HTTP_X_USER`), so a
/// client-sent `x_user` can stand in for a plugin-set `x-user`. A plugin that sets
/// a header from an authenticated source removes every such spelling first.
pub fn is_spelling_of(name: &[u8], canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .iter()
            .zip(canonical.bytes())
            .all(|(&a, b)| a == b || (matches!(a, b'-' | b'_') && matches!(b, b'-' | b'_')))
}

/// The pairs of a header map as the host serializes it: a little-endian u32 count,
/// then a (name length, value length) u32 pair per header, then each name and value
/// followed by a NUL. Reading it in place costs one buffer per request instead of
/// two allocations per header, and a malformed buffer ends the iteration instead of
/// panicking.
pub fn pairs(buf: &[u8]) -> Pairs<'_> {
    let count = read_u32(buf, 0).unwrap_or(0) as usize;
    Pairs {
        buf,
        index: 0,
        count,
        data: 4usize.saturating_add(count.saturating_mul(8)),
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Iterator over `(name, value)` byte slices of a serialized header map.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    buf: &'a [u8],
    index: usize,
    count: usize,
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let sizes = self.index.checked_mul(8)?.checked_add(4)?;
        let name_len = read_u32(self.buf, sizes)? as usize;
        let value_len = read_u32(self.buf, sizes.checked_add(4)?)? as usize;
        let name_end = self.data.checked_add(name_len)?;
        let name = self.buf.get(self.data..name_end)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = self.buf.get(value_start..value_end)?;
        self.data = value_end.checked_add(1)?;
        self.index += 1;
        Some((name, value))
    }
}

/// A header map in the host's serialized form, read in place: one buffer per map
/// instead of two allocations per header, and no panic on a value that is not
/// UTF-8 (the SDK's own reader does both). The buffer is parsed once, into the
/// spans of its names and values: a chain's instances each scan the map, and a
/// scan of spans costs a tenth of parsing the buffer again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    buf: Vec<u8>,
    /// (name start, name end, value start, value end) of each header, in order.
    spans: Vec<[u32; 4]>,
}

/// The `(name, value)` pairs of a [`HeaderMap`].
pub struct MapPairs<'a> {
    buf: &'a [u8],
    spans: std::slice::Iter<'a, [u32; 4]>,
}

impl<'a> Iterator for MapPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let [a, b, c, d] = *self.spans.next()?;
        let name = self.buf.get(a as usize..b as usize).unwrap_or_default();
        let value = self.buf.get(c as usize..d as usize).unwrap_or_default();
        Some((name, value))
    }
}

impl HeaderMap {
    /// A map over a buffer in the host's serialized form (see [`pairs`]); a
    /// malformed buffer holds the pairs that were complete.
    pub fn from_buf(buf: Vec<u8>) -> Self {
        let base = buf.as_ptr() as usize;
        // Every slice `pairs` yields lies in `buf`.
        let offset = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base) as u32;
        let spans = pairs(&buf)
            .map(|(n, v)| {
                let (a, c) = (offset(n), offset(v));
                [a, a + n.len() as u32, c, c + v.len() as u32]
            })
            .collect();
        HeaderMap { buf, spans }
    }

    pub fn pairs(&self) -> MapPairs<'_> {
        MapPairs {
            buf: &self.buf,
            spans: self.spans.iter(),
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every value of header `name` (lowercase), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs()
            .filter(move |(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// The map as Envoy's header map is after an edit: `add` (`keep_others`)
    /// appends a value; `replace` removes every value and appends this one
    /// (Envoy's `setCopy`); `remove` (`value` None) removes every value. Reading
    /// the host's map again would cost a host call and a call back into the VM for
    /// the buffer.
    pub fn edited(&self, name: &str, value: Option<&[u8]>, keep_others: bool) -> HeaderMap {
        let kept = |n: &[u8]| keep_others || n != name.as_bytes();
        let mut count = 0usize;
        let mut data = 0usize;
        for (n, v) in self.pairs().filter(|(n, _)| kept(n)) {
            count += 1;
            data += n.len() + v.len() + 2;
        }
        if let Some(v) = value {
            count += 1;
            data += name.len() + v.len() + 2;
        }
        let mut out = Writer::with_capacity(count, data);
        for (n, v) in self.pairs().filter(|(n, _)| kept(n)) {
            out.push(n, v);
        }
        if let Some(v) = value {
            out.push(name.as_bytes(), v);
        }
        out.finish()
    }
}

/// Writes a serialized map of a known number of pairs and data size in one
/// buffer, recording the spans as it goes.
struct Writer {
    buf: Vec<u8>,
    spans: Vec<[u32; 4]>,
    /// Where the next name goes.
    data: usize,
}

impl Writer {
    fn with_capacity(count: usize, data: usize) -> Self {
        let head = 4 + 8 * count;
        let mut buf = vec![0u8; head];
        buf.reserve(data);
        if let Some(slot) = buf.get_mut(0..4) {
            slot.copy_from_slice(&(count as u32).to_le_bytes());
        }
        Writer {
            buf,
            spans: Vec::with_capacity(count),
            data: head,
        }
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let at = 4 + 8 * self.spans.len();
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&(name.len() as u32).to_le_bytes());
        }
        if let Some(slot) = self.buf.get_mut(at + 4..at + 8) {
            slot.copy_from_slice(&(value.len() as u32).to_le_bytes());
        }
        let a = self.data;
        self.buf.extend_from_slice(name);
        self.buf.push(0);
        let c = a + name.len() + 1;
        self.buf.extend_from_slice(value);
        self.buf.push(0);
        self.spans.push([
            a as u32,
            (a + name.len()) as u32,
            c as u32,
            (c + value.len()) as u32,
        ]);
        self.data = c + value.len() + 1;
    }

    fn finish(self) -> HeaderMap {
        HeaderMap {
            buf: self.buf,
            spans: self.spans,
        }
    }
}

/// Serializes pairs the way the host takes them; the inverse of [`pairs`].
pub fn serialize(map: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (name, value) in map {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in map {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        for ok in ["allow", "X-Frame-Options", "a!#$%&'*+-.^_`|~9"] {
            assert!(is_token(ok), "{ok}");
        }
        for bad in ["", "a b", "a:b", ":path", "a\r", "é", "a(b)", "a\"b"] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(header_name("X-Allow").unwrap(), "x-allow");
        let err = header_name("").unwrap_err();
        assert_eq!(err, "header name must not be empty");
        let err = header_name(":path").unwrap_err();
        assert!(err.contains("pseudo-header"), "{err}");
        // Quoted escaped, like every name: the error is logged as one line.
        let err = header_name(":a\r\nb").unwrap_err();
        assert_eq!(
            err,
            "':a\\r\\nb' is a pseudo-header and cannot be used here"
        );
        let err = header_name("bad name").unwrap_err();
        assert!(err.contains("not a valid header name"), "{err}");
        for bad in ["a\rb", "a\nb", "a\0b"] {
            assert!(header_value(bad).is_err(), "{bad:?}");
        }
        assert_eq!(header_value("text/plain; q=1").unwrap(), "text/plain; q=1");
    }

    #[test]
    fn spellings() {
        for (name, canonical, same) in [
            ("x-user", "x-user", true),
            ("x_user", "x-user", true),
            ("x_user_id", "x-user-id", true),
            ("x-user_id", "x_user-id", true),
            ("x-users", "x-user", false),
            ("xuser", "x-user", false),
            ("x.user", "x-user", false),
            ("x-usex", "x-user", false),
            ("", "", true),
        ] {
            assert_eq!(
                is_spelling_of(name.as_bytes(), canonical),
                same,
                "{name} {canonical}"
            );
        }
    }

    #[test]
    fn framing_headers() {
        for (name, framing) in [
            ("content-length", true),
            ("transfer-encoding", true),
            ("content-type", false),
            ("te", false),
            ("Content-Length", false),
        ] {
            assert_eq!(is_framing(name), framing, "{name}");
        }
    }

    #[test]
    fn pairs_round_trip() {
        let map: [(&str, &[u8]); 3] = [(":path", b"/"), ("allow", b"true"), ("x", b"\xff\x00")];
        let buf = serialize(&map);
        let got: Vec<_> = pairs(&buf).collect();
        assert_eq!(got.len(), 3);
        for ((name, value), (got_name, got_value)) in map.iter().zip(got) {
            assert_eq!(name.as_bytes(), got_name);
            assert_eq!(*value, got_value);
        }
    }

    #[test]
    fn edits_mirror_envoys_header_map() {
        let map = HeaderMap::from_buf(serialize(&[
            (":path", b"/"),
            ("x-a", b"1"),
            ("x-b", b"2"),
            ("x-a", b"3"),
        ]));
        let list = |m: &HeaderMap| -> Vec<(String, String)> {
            m.pairs()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into(),
                        String::from_utf8_lossy(v).into(),
                    )
                })
                .collect()
        };
        let l = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            list(&map.edited("x-a", Some(b"4"), true)),
            l(&[
                (":path", "/"),
                ("x-a", "1"),
                ("x-b", "2"),
                ("x-a", "3"),
                ("x-a", "4")
            ])
        );
        assert_eq!(
            list(&map.edited("x-a", Some(b"4"), false)),
            l(&[(":path", "/"), ("x-b", "2"), ("x-a", "4")])
        );
        assert_eq!(
            list(&map.edited("x-a", None, false)),
            l(&[(":path", "/"), ("x-b", "2")])
        );
        assert_eq!(list(&map.edited("x-c", None, false)), list(&map));
    }

    #[test]
    fn malformed_buffers_end_the_iteration() {
        let buf = serialize(&[("allow", b"true"), ("b", b"c")]);
        for cut in 0..buf.len() {
            // Never panics; yields only pairs that were complete.
            assert!(pairs(&buf[..cut]).count() <= 2);
        }
        assert_eq!(pairs(&[]).count(), 0);
        let huge_count = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(pairs(&huge_count).count(), 0);
        // The map keeps what the parser found, and reads it back the same.
        for cut in 0..=buf.len() {
            let part = buf.get(..cut).unwrap();
            let map = HeaderMap::from_buf(part.to_vec());
            assert!(map.pairs().eq(pairs(part)), "cut at {cut}");
            assert_eq!(
                map.edited("b", None, false).pairs().count(),
                map.values("allow").count()
            );
        }
    }
}
