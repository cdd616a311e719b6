//! YAML in and out: gateway files are read into `serde_json::Value` (so plugin
//! configs reach their config types exactly as Istio would hand them over), and
//! manifests are written by a small emitter whose output depends only on its input.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// Parses one YAML document into JSON values. Errors say what is wrong and where.
pub fn parse(text: &str) -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    match docs.as_slice() {
        [] => Ok(Value::Null),
        [doc] => to_json(doc),
        _ => Err(format!(
            "invalid YAML: expected one document, found {}",
            docs.len()
        )),
    }
}

fn to_json(yaml: &Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(text) => {
            let number = yaml
                .as_f64()
                .and_then(Number::from_f64)
                .ok_or_else(|| format!("invalid YAML: {text} is not a finite number"))?;
            Value::Number(number)
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(hash) => {
            let mut map = Map::new();
            for (key, value) in hash {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    _ => return Err(format!("invalid YAML: unsupported mapping key {key:?}")),
                };
                map.insert(key, to_json(value)?);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) => return Err("invalid YAML: aliases are not supported".into()),
        Yaml::BadValue => return Err("invalid YAML: bad value".into()),
    })
}

/// A YAML node to write. Maps keep the order they are built in; JSON values inside
/// (plugin configs, match clauses) are written with their keys sorted, so the output
/// never depends on how a map was built.
#[derive(Debug, Clone)]
pub enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Str(String),
    Int(i64),
    Json(Value),
}

impl Node {
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Node {
        Node::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn from_json(value: &Value) -> Node {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::from_json(v)))
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Map(entries)
            }
            Value::Array(items) => Node::List(items.iter().map(Node::from_json).collect()),
            Value::String(s) => Node::Str(s.clone()),
            other => Node::Json(other.clone()),
        }
    }

    /// Scalars and empty collections fit on the line of their key or dash.
    fn inline(&self) -> Option<String> {
        match self {
            Node::Map(entries) if entries.is_empty() => Some("{}".into()),
            Node::List(items) if items.is_empty() => Some("[]".into()),
            Node::Map(_) | Node::List(_) => None,
            Node::Str(s) => Some(scalar(s)),
            Node::Int(i) => Some(i.to_string()),
            Node::Json(value @ (Value::Object(_) | Value::Array(_) | Value::String(_))) => {
                Node::from_json(value).inline()
            }
            Node::Json(value) => Some(value.to_string()),
        }
    }

    fn expand(&self) -> Node {
        match self {
            Node::Json(value) => Node::from_json(value),
            other => other.clone(),
        }
    }

    /// Writes this node as a block at `indent` spaces.
    fn write(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self.expand() {
            Node::Map(entries) => {
                for (key, value) in entries {
                    out.push_str(&pad);
                    out.push_str(&scalar(&key));
                    out.push(':');
                    match value.inline() {
                        Some(text) => {
                            out.push(' ');
                            out.push_str(&text);
                            out.push('\n');
                        }
                        None => {
                            out.push('\n');
                            // Lists sit at their key's indent, as kubectl writes them.
                            let child = match value.expand() {
                                Node::List(_) => indent,
                                _ => indent + 2,
                            };
                            value.write(child, out);
                        }
                    }
                }
            }
            Node::List(items) => {
                for item in items {
                    match item.inline() {
                        Some(text) => {
                            out.push_str(&pad);
                            out.push_str("- ");
                            out.push_str(&text);
                            out.push('\n');
                        }
                        None => {
                            // The item's block, with its first indent replaced by the dash.
                            let mut block = String::new();
                            item.write(indent + 2, &mut block);
                            out.push_str(&pad);
                            out.push_str("- ");
                            out.push_str(&block[indent + 2..]);
                        }
                    }
                }
            }
            scalar_node => {
                out.push_str(&pad);
                out.push_str(&scalar_node.inline().unwrap_or_default());
                out.push('\n');
            }
        }
    }
}

/// The YAML text of a document.
pub fn to_string(node: &Node) -> String {
    let mut out = String::new();
    node.write(0, &mut out);
    out
}

/// A string as a YAML scalar: plain when no YAML reader (1.1 or 1.2) could take it
/// for anything but that string, else double-quoted with JSON escapes (valid YAML).
fn scalar(s: &str) -> String {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-:".contains(c))
        && !s.ends_with(':')
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        return s.to_string();
    }
    // JSON's escapes are YAML's, but JSON leaves these raw, and YAML 1.1 readers
    // take them for line breaks (or a byte order mark).
    let mut quoted = String::new();
    for c in Value::String(s.to_string()).to_string().chars() {
        match c {
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => quoted.push(c),
        }
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_plain_only_when_unambiguous() {
        let cases = [
            ("istio-system", "istio-system"),
            (
                "oci://r.example.com/p/header-authorization:0.1.0",
                "oci://r.example.com/p/header-authorization:0.1.0",
            ),
            ("0.1.0", "\"0.1.0\""),
            ("10", "\"10\""),
            ("on", "\"on\""),
            ("No", "\"No\""),
            ("", "\"\""),
            ("a: b", "\"a: b\""),
            ("key:", "\"key:\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("@type", "\"@type\""),
            ("#x", "\"#x\""),
            ("caf\u{e9} \u{2028}", "\"caf\u{e9} \\u2028\""),
        ];
        for (input, expected) in cases {
            assert_eq!(scalar(input), expected, "{input:?}");
        }
    }

    #[test]
    fn written_yaml_reads_back_as_the_same_value() {
        let value = json!({
            "b": [1, "two", {"x": true, "y": null, "z": [[]]}, [], {}],
            "a": {"nested": {"deep": ["on", "1e3", " lead", "trail "]}},
            "c": 2.5,
            "d": "multi\nline: text # not a comment",
            "u": "caf\u{e9}\u{2028}\u{85}\u{feff}\t\u{1}",
            "empty": {},
            "list": [{"k": [1, 2]}, {"m": {"n": "o"}}],
            "lists": [[1, 2], [3]],
        });
        let text = to_string(&Node::Json(value.clone()));
        assert_eq!(parse(&text).unwrap(), value, "{text}");
    }

    #[test]
    fn maps_keep_their_order_and_lists_sit_under_their_key() {
        let node = Node::map([
            ("kind", Node::str("Kustomization")),
            (
                "resources",
                Node::List(vec![Node::str("a.yaml"), Node::str("b.yaml")]),
            ),
            ("apiVersion", Node::str("v1")),
        ]);
        assert_eq!(
            to_string(&node),
            "kind: Kustomization\nresources:\n- a.yaml\n- b.yaml\napiVersion: v1\n"
        );
    }

    #[test]
    fn parse_errors_say_invalid_yaml() {
        assert!(parse("a: [1").unwrap_err().starts_with("invalid YAML: "));
        assert!(parse("a: 1\na: 2").unwrap_err().contains("duplicated key"));
        assert!(parse("a: 1\n---\nb: 2")
            .unwrap_err()
            .contains("one document"));
        assert_eq!(parse("").unwrap(), Value::Null);
    }
}
