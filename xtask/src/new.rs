//! `cargo xtask new <name>`: a new plugin, `plugins/<name>/`, that builds, runs
//! and passes its tests straight away: a config type, host-free logic with a
//! table-driven unit test, the few-line adapter, a README with a config table, a
//! gateway file to try it with (`<name>.yaml`), and an end-to-end test in a real Envoy
//! (`harness/tests/<name with '_'>.rs`). Then the Cargo.toml sections that name
//! every plugin are written (`plugin_lists`); nothing else lists plugins.
//!
//! The plugin it makes denies a request that lacks a configured header: small,
//! but a real decision with a config, a denial, logs and tests to start from.

use crate::plugin_lists;
use crate::util::{root, Result};
use std::path::{Path, PathBuf};

/// The files of a new plugin: (path under `plugins/<name>/`, template).
const PLUGIN_FILES: [(&str, &str); 6] = [
    (
        "Cargo.toml",
        include_str!("../templates/plugin/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/plugin/README.md.tmpl"),
    ),
    // A gateway file is named after the gateway it holds.
    (
        "@NAME@.yaml",
        include_str!("../templates/plugin/gateway.yaml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/plugin/src/lib.rs.tmpl"),
    ),
    (
        "src/config.rs",
        include_str!("../templates/plugin/src/config.rs.tmpl"),
    ),
    (
        "src/decide.rs",
        include_str!("../templates/plugin/src/decide.rs.tmpl"),
    ),
];

/// Its end-to-end test, `harness/tests/<crate>.rs`.
const TEST: &str = include_str!("../templates/plugin/test.rs.tmpl");

/// The longest name: it becomes image, file and Kubernetes names with more
/// around it (`<gateway>-<instance>` is a DNS label of at most 63).
const MAX_LEN: usize = 40;

/// Crate names a plugin's would clash with or shadow: the standard library's
/// and the ones every crate can name.
const RESERVED_CRATES: [&str; 5] = ["std", "core", "alloc", "proc_macro", "test"];

/// Rust's keywords, strict and reserved: a crate named one cannot be written in
/// a path (`use type::...`).
const KEYWORDS: [&str; 51] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

pub fn run_command(args: &[String]) -> Result<()> {
    let [name] = args else {
        return Err("usage: cargo xtask new <name>   (lowercase letters, digits and '-')".into());
    };
    let written = create(&root(), name)?;
    for path in &written {
        println!("wrote {}", relative(path));
    }
    let krate = name.replace('-', "_");
    println!(
        "\nplugins/{name}/ is a plugin now. Next:\n  \
         cargo xtask run --gateways plugins/{name}/{name}.yaml  (it in a local Envoy)\n  \
         cargo xtask test -- {krate}  (its unit and end-to-end tests)\n  \
         cargo xtask build-all  (every module, {name}.wasm among them)"
    );
    Ok(())
}

/// Makes plugin `name` in the workspace at `root`; returns the files written.
pub fn create(root: &Path, name: &str) -> Result<Vec<PathBuf>> {
    check_name(name)?;
    check_free(root, name)?;
    let krate = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("@NAME@", name)
            .replace("@CRATE@", &krate)
            .replace("@TYPE@", &type_name(name))
    };
    // Written beside its place and moved in whole: a failure leaves no half a
    // plugin for the next `new` to trip on.
    let plugins = root.join("plugins");
    let staging = plugins.join(format!(".{name}.new"));
    let _ = std::fs::remove_dir_all(&staging);
    let dir = plugins.join(name);
    let mut written = Vec::new();
    for (file, template) in PLUGIN_FILES {
        let file = fill(file);
        write(&staging.join(&file), &fill(template))?;
        written.push(dir.join(file));
    }
    std::fs::rename(&staging, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let test = root
        .join("harness")
        .join("tests")
        .join(format!("{krate}.rs"));
    write(&test, &fill(TEST))?;
    written.push(test);
    written.extend(plugin_lists::refresh(root)?);
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn relative(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A plugin name is its directory, its package, its crate (with '_' for '-'),
/// its module and image name and a default instance name: lowercase ASCII
/// letters, digits and '-', starting with a letter, not ending with '-', at most
/// [`MAX_LEN`], and not a name Rust or the workspace keeps for itself.
pub fn check_name(name: &str) -> Result<()> {
    let refuse = |why: &str| Err(format!("new: '{}' {why}", name.escape_debug()));
    if name.is_empty() {
        return Err("new: the name must not be empty".into());
    }
    if name.len() > MAX_LEN {
        return refuse(&format!("is longer than {MAX_LEN} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return refuse("is not a plugin name: lowercase ASCII letters, digits and '-' only");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return refuse("must start with a letter");
    }
    if name.ends_with('-') {
        return refuse("must not end with '-'");
    }
    let krate = name.replace('-', "_");
    if KEYWORDS.contains(&krate.as_str()) {
        return refuse("is a Rust keyword, which cannot name a crate");
    }
    if RESERVED_CRATES.contains(&krate.as_str()) {
        return refuse("is the name of a crate every Rust crate can use");
    }
    Ok(())
}

/// Refuses a name taken: a directory under `plugins/`, an end-to-end test file of
/// that name, or a crate of that name anywhere in the workspace's dependency
/// graph (a workspace crate such as `common` or `xtask`, or a dependency such as
/// `serde`: one build cannot link two crates of one name).
pub fn check_free(root: &Path, name: &str) -> Result<()> {
    let krate = name.replace('-', "_");
    if root.join("plugins").join(name).exists() {
        return Err(format!("new: plugins/{name} exists already"));
    }
    let test = format!("harness/tests/{krate}.rs");
    if root.join(&test).exists() || root.join(format!("harness/tests/{krate}")).exists() {
        return Err(format!(
            "new: {test} (or a directory of that name) exists already"
        ));
    }
    let lock = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut crates: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(str::to_string)
        .collect();
    // Workspace crates the lock file may not list yet.
    for dir in ["plugins", "harness/modules"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            crates.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    crates.extend(["common", "harness", "xtask", "fuzz", "chain"].map(String::from));
    if let Some(taken) = crates.iter().find(|c| c.replace('-', "_") == krate) {
        return Err(format!(
            "new: '{name}' is taken: the workspace already builds a crate named '{taken}'"
        ));
    }
    Ok(())
}

/// `demo-plugin` -> `DemoPlugin`, the type that implements `Plugin`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_a_plugin_are_refused_in_one_line() {
        let cases = [
            ("", "new: the name must not be empty"),
            ("My-Plugin", "new: 'My-Plugin' is not a plugin name: lowercase ASCII letters, digits and '-' only"),
            ("my_plugin", "new: 'my_plugin' is not a plugin name: lowercase ASCII letters, digits and '-' only"),
            ("my plugin", "new: 'my plugin' is not a plugin name: lowercase ASCII letters, digits and '-' only"),
            ("plüg", "new: 'plüg' is not a plugin name: lowercase ASCII letters, digits and '-' only"),
            ("a\nb", "new: 'a\\nb' is not a plugin name: lowercase ASCII letters, digits and '-' only"),
            ("1password", "new: '1password' must start with a letter"),
            ("-x", "new: '-x' must start with a letter"),
            ("gate-", "new: 'gate-' must not end with '-'"),
            ("type", "new: 'type' is a Rust keyword, which cannot name a crate"),
            ("self", "new: 'self' is a Rust keyword, which cannot name a crate"),
            ("test", "new: 'test' is the name of a crate every Rust crate can use"),
            ("proc-macro", "new: 'proc-macro' is the name of a crate every Rust crate can use"),
        ];
        for (name, expected) in cases {
            let err = check_name(name).unwrap_err();
            assert_eq!(err, expected, "{name:?}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(
            check_name(&long).unwrap_err(),
            format!("new: '{long}' is longer than 40 characters")
        );
        for ok in [
            "a",
            "demo-plugin",
            "x2",
            "rate-limit-v2",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_taken_in_the_workspace_are_refused() {
        let root = root();
        let cases = [
            ("basic-auth", "new: plugins/basic-auth exists already"),
            ("chain", "new: plugins/chain exists already"),
            ("protocols", "new: harness/tests/protocols.rs (or a directory of that name) exists already"),
            ("common", "new: 'common' is taken: the workspace already builds a crate named 'common'"),
            ("xtask", "new: 'xtask' is taken: the workspace already builds a crate named 'xtask'"),
            ("harness", "new: 'harness' is taken: the workspace already builds a crate named 'harness'"),
            ("fuzz", "new: 'fuzz' is taken: the workspace already builds a crate named 'fuzz'"),
            ("trap", "new: 'trap' is taken: the workspace already builds a crate named 'trap'"),
            ("serde-json", "new: 'serde-json' is taken: the workspace already builds a crate named 'serde_json'"),
            ("log", "new: 'log' is taken: the workspace already builds a crate named 'log'"),
        ];
        for (name, expected) in cases {
            assert_eq!(check_free(&root, name).unwrap_err(), expected, "{name}");
        }
        let free = format!("free-{}", std::process::id());
        assert_eq!(check_free(&root, &free), Ok(()));
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("demo-plugin"), "DemoPlugin");
        assert_eq!(type_name("a1-b"), "A1B");
        assert_eq!(type_name("x"), "X");
    }

    /// Every placeholder in the templates is one `create` fills.
    #[test]
    fn templates_have_no_unknown_placeholders() {
        for (file, template) in PLUGIN_FILES.iter().copied().chain([("test", TEST)]) {
            let left = template
                .replace("@NAME@", "")
                .replace("@CRATE@", "")
                .replace("@TYPE@", "");
            assert!(
                !left.contains('@'),
                "{file} has a placeholder create does not fill"
            );
        }
    }
}
