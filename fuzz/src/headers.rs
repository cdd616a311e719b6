//! `header_pairs`: the reader of the host's serialized header map,
//! `common::headers::pairs`, and its inverse `serialize`. Any buffer is read without
//! a panic and yields no more pairs than it declares, each inside the buffer; what
//! is read, and any list of pairs, survives a round trip; and a cut buffer yields
//! a prefix of the pairs, never garbage. The parsed `HeaderMap` reads the same
//! pairs, and its edits (what a chain carries into the map it read) agree with
//! editing the list of pairs the way Envoy's header map does.

use common::headers::{pairs, serialize, HeaderMap};

pub fn run(data: &[u8]) {
    // The input as a buffer the host handed over.
    let declared = data
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let read: Vec<(&[u8], &[u8])> = pairs(data).collect();
    assert!(read.len() <= declared, "{} pairs of {declared}", read.len());
    let range = data.as_ptr_range();
    for (name, value) in &read {
        for part in [name, value] {
            let inside = range.start <= part.as_ptr() && part.as_ptr_range().end <= range.end;
            assert!(inside, "a pair outside the buffer");
        }
    }
    if let Some(map) = as_text(&read) {
        round_trip(&map);
    }
    let parsed = HeaderMap::from_buf(data.to_vec());
    assert!(
        parsed.pairs().eq(read.iter().copied()),
        "HeaderMap reads other pairs"
    );
    edits(&parsed, data);

    // The input as lines of `name: value`, serialized the way a deny reply is.
    let lines: Vec<(String, &[u8])> = crate::lines(data)
        .map(crate::header_line)
        .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value))
        .collect();
    let map: Vec<(&str, &[u8])> = lines.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let buf = round_trip(&map);
    let cut = (crate::hash(data) % (buf.len() as u64 + 1)) as usize;
    let partial: Vec<(&[u8], &[u8])> = pairs(&buf[..cut]).collect();
    assert!(partial.len() <= map.len());
    for ((name, value), (got_name, got_value)) in map.iter().zip(&partial) {
        assert_eq!(
            (name.as_bytes(), *value),
            (*got_name, *got_value),
            "cut at {cut}"
        );
    }
}

/// The pairs with their names as text, when every name is UTF-8 (`serialize`
/// takes `&str` names, as every caller has them).
fn as_text<'a>(read: &[(&'a [u8], &'a [u8])]) -> Option<Vec<(&'a str, &'a [u8])>> {
    read.iter()
        .map(|(n, v)| std::str::from_utf8(n).ok().map(|n| (n, *v)))
        .collect()
}

fn round_trip(map: &[(&str, &[u8])]) -> Vec<u8> {
    let buf = serialize(map);
    let back: Vec<(&[u8], &[u8])> = pairs(&buf).collect();
    let want: Vec<(&[u8], &[u8])> = map.iter().map(|(n, v)| (n.as_bytes(), *v)).collect();
    assert_eq!(back, want, "serialize then pairs");
    buf
}

/// Adds, replaces and removes a name the input picks (one of its own names, or
/// a fixed one) and checks the map against the same edit of its pair list.
fn edits(map: &HeaderMap, data: &[u8]) {
    let name = map
        .pairs()
        .filter_map(|(n, _)| std::str::from_utf8(n).ok())
        .nth((crate::hash(data) % 4) as usize)
        .unwrap_or("x-edit");
    let list: Vec<(&[u8], &[u8])> = map.pairs().collect();
    let value: &[u8] = b"v";
    let cases: [(Option<&[u8]>, bool); 3] =
        [(Some(value), true), (Some(value), false), (None, false)];
    for (value, keep_others) in cases {
        let mut want: Vec<(&[u8], &[u8])> = list
            .iter()
            .copied()
            .filter(|(n, _)| keep_others || *n != name.as_bytes())
            .collect();
        if let Some(v) = value {
            want.push((name.as_bytes(), v));
        }
        let got = map.edited(name, value, keep_others);
        assert!(got.pairs().eq(want.iter().copied()), "edit of {name:?}");
        // The edited map is itself a valid serialized map.
        let again: Vec<(&[u8], &[u8])> = got.pairs().collect();
        assert_eq!(again.len(), got.len());
    }
}
