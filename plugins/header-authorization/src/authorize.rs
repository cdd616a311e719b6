//! The decision: does the request carry the header with only accepted values?

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The header is absent.
    Missing,
    /// The header is present but at least one occurrence is not accepted.
    NotAllowed,
}

/// Decides from every occurrence of the configured header, in order. A repeated
/// header passes only if every occurrence is accepted, so a second value cannot be
/// smuggled past the check.
pub fn decide<'a>(config: &Config, values: impl IntoIterator<Item = &'a [u8]>) -> Decision {
    let mut seen = false;
    for value in values {
        seen = true;
        if !config.values.iter().any(|v| v.as_bytes() == value) {
            return Decision::NotAllowed;
        }
    }
    if seen {
        Decision::Allow
    } else {
        Decision::Missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let seed = Config::parse(b"{}").unwrap();
        let custom = Config::parse(br#"{"header": "x-team", "values": ["red", "blue"]}"#).unwrap();
        let cases: &[(&str, &Config, &[&str], Decision)] = &[
            ("missing", &seed, &[], Decision::Missing),
            ("allowed", &seed, &["true"], Decision::Allow),
            ("false", &seed, &["false"], Decision::NotAllowed),
            (
                "case-sensitive value",
                &seed,
                &["TRUE"],
                Decision::NotAllowed,
            ),
            ("empty value", &seed, &[""], Decision::NotAllowed),
            ("padded value", &seed, &[" true"], Decision::NotAllowed),
            (
                "repeated, all good",
                &seed,
                &["true", "true"],
                Decision::Allow,
            ),
            (
                "repeated, one bad",
                &seed,
                &["true", "false"],
                Decision::NotAllowed,
            ),
            (
                "repeated, bad first",
                &seed,
                &["false", "true"],
                Decision::NotAllowed,
            ),
            ("custom first value", &custom, &["red"], Decision::Allow),
            ("custom second value", &custom, &["blue"], Decision::Allow),
            (
                "custom other value",
                &custom,
                &["green"],
                Decision::NotAllowed,
            ),
            ("custom mixed", &custom, &["red", "blue"], Decision::Allow),
        ];
        for (name, config, values, expected) in cases {
            let got = decide(config, values.iter().map(|v| v.as_bytes()));
            assert_eq!(got, *expected, "{name}");
        }
    }

    #[test]
    fn non_utf8_values_are_just_not_accepted() {
        let seed = Config::parse(b"{}").unwrap();
        let values: [&[u8]; 1] = [b"tr\xffue"];
        assert_eq!(decide(&seed, values), Decision::NotAllowed);
    }
}
