//! The primitives credentials are checked with: base64 without allocation on the
//! request path, SHA-1 and SHA-256, and a comparison whose time does not depend on
//! where two byte strings differ.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Standard alphabet; padding optional, since clients and config writers differ.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes base64 (configure time).
pub fn b64_decode(text: &[u8]) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// Decodes base64 into `out` (request time), returning the decoded part; `None`
/// when `text` is not base64 or does not fit.
pub fn b64_decode_into<'a>(text: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
    let n = B64.decode_slice(text, out).ok()?;
    out.get(..n)
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// True when `a == b`, in time that depends only on the lengths. Length is not
/// hidden: callers compare fixed-size digests, or user names, which are not secret.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimizer from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_table() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"xbc", false),
            (b"abc", b"ab", false),
            (b"", b"a", false),
            (&[0xff, 0], &[0xff, 0], true),
        ];
        for (a, b, expected) in cases {
            assert_eq!(ct_eq(a, b), *expected, "{a:?} {b:?}");
        }
    }

    #[test]
    fn known_digests() {
        // `printf test | openssl dgst -binary -sha1 | base64`
        let mut out = [0u8; 32];
        assert_eq!(
            b64_decode_into(b"qUqP5cyxm6YcTAhz05Hph5gvu9M=", &mut out),
            Some(&sha1(b"test")[..])
        );
        assert_eq!(
            b64_decode("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg".as_bytes()),
            Some(sha256(b"test").to_vec())
        );
    }

    #[test]
    fn base64_edge_cases() {
        let mut out = [0u8; 4];
        assert_eq!(
            b64_decode_into(b"b2s6dGVzdA==", &mut [0u8; 16]),
            Some(&b"ok:test"[..])
        );
        assert_eq!(
            b64_decode_into(b"b2s6dGVzdA", &mut [0u8; 16]),
            Some(&b"ok:test"[..])
        );
        // Too long for the buffer, URL-safe alphabet, junk: all refused, no panic.
        assert_eq!(b64_decode_into(b"b2s6dGVzdA==", &mut out), None);
        assert_eq!(b64_decode_into(b"-_-_", &mut out), None);
        assert_eq!(b64_decode_into(b"a b=", &mut out), None);
        assert_eq!(b64_decode_into(b"", &mut out), Some(&b""[..]));
    }
}
