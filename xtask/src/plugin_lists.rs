//! The Cargo.toml sections that must name every plugin, derived from `plugins/`.
//!
//! The directory is the one source: a plugin is a crate under `plugins/`. Cargo
//! cannot discover dependencies, so the manifests of the two crates that link
//! every plugin (xtask, which validates their configs, and the chain module,
//! which runs them) carry the list between marker lines, `# BEGIN GENERATED
//! <id>` and `# END GENERATED <id>`. `cargo xtask new` writes them, `build-all`
//! refreshes them, and a unit test fails, naming the command, when they disagree
//! with the directory. The Rust lists (xtask's registry, the chain's
//! `config::PLUGINS`) are made from these sections by each crate's build.rs, so
//! they always compile against what Cargo.toml declares.

use crate::util::Result;
use std::path::{Path, PathBuf};

/// The module that holds every other plugin: it never lists itself.
const CHAIN: &str = "chain";

/// One generated section: the file (relative to the workspace root), its id
/// between the markers, and its lines made from the plugins and their manifests.
struct Section {
    file: &'static str,
    id: &'static str,
    body: fn(&[Plugin]) -> Vec<String>,
}

/// A crate under `plugins/`: its name, and whether it has a `schema` feature
/// (its config's JSON Schema, which xtask turns on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    pub name: String,
    pub schema: bool,
}

const SECTIONS: [Section; 3] = [
    Section {
        file: "xtask/Cargo.toml",
        id: "plugins",
        body: xtask_dependencies,
    },
    Section {
        file: "plugins/chain/Cargo.toml",
        id: "plugins",
        body: chain_dependencies,
    },
    Section {
        file: "plugins/chain/Cargo.toml",
        id: "features",
        body: chain_features,
    },
];

fn xtask_dependencies(plugins: &[Plugin]) -> Vec<String> {
    plugins
        .iter()
        .map(|p| match p.schema {
            true => format!(
                "{0} = {{ path = \"../plugins/{0}\", features = [\"schema\"] }}",
                p.name
            ),
            false => format!("{0} = {{ path = \"../plugins/{0}\" }}", p.name),
        })
        .collect()
}

fn chain_dependencies(plugins: &[Plugin]) -> Vec<String> {
    chained(plugins)
        .map(|p| {
            format!("{p} = {{ path = \"../{p}\", default-features = false, optional = true }}")
        })
        .collect()
}

fn chain_features(plugins: &[Plugin]) -> Vec<String> {
    let mut lines = vec!["default = [".to_string()];
    lines.extend(chained(plugins).map(|p| format!("    \"{p}\",")));
    lines.push("]".to_string());
    lines.extend(chained(plugins).map(|p| format!("{p} = [\"dep:{p}\"]")));
    lines
}

fn chained(plugins: &[Plugin]) -> impl Iterator<Item = &str> {
    plugins
        .iter()
        .map(|p| p.name.as_str())
        .filter(|p| *p != CHAIN)
}

/// The crates under `root/plugins/`, sorted, with what their manifests say.
pub fn plugins(root: &Path) -> Result<Vec<Plugin>> {
    let dir = root.join("plugins");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut plugins = Vec::new();
    for entry in entries.flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        plugins.push(Plugin {
            name: entry.file_name().to_string_lossy().into_owned(),
            schema: has_feature(&text, "schema"),
        });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

/// Whether a manifest's `[features]` table declares `feature`.
fn has_feature(manifest: &str, feature: &str) -> bool {
    let mut in_features = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features {
            let key = line.split('=').next().unwrap_or_default().trim();
            if !line.starts_with('#') && key == feature {
                return true;
            }
        }
    }
    false
}

fn begin(id: &str) -> String {
    format!("# BEGIN GENERATED {id}")
}

fn end(id: &str) -> String {
    format!("# END GENERATED {id}")
}

/// `text` with the lines between the markers of section `id` replaced by `body`.
fn replace(text: &str, id: &str, body: &[String]) -> std::result::Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let find = |marker: &str| lines.iter().position(|l| l.trim() == marker);
    let (Some(from), Some(to)) = (find(&begin(id)), find(&end(id))) else {
        return Err(format!(
            "no section between '{}' and '{}'",
            begin(id),
            end(id)
        ));
    };
    if to < from {
        return Err(format!("'{}' comes before '{}'", end(id), begin(id)));
    }
    let mut out: Vec<String> = lines[..=from].iter().map(|l| l.to_string()).collect();
    out.extend(body.iter().cloned());
    out.extend(lines[to..].iter().map(|l| l.to_string()));
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The manifests whose generated sections differ from what `root/plugins/`
/// makes, each with the text it should have.
pub fn stale(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let plugins = plugins(root)?;
    let mut files: Vec<(PathBuf, String, String)> = Vec::new();
    for section in &SECTIONS {
        let path = root.join(section.file);
        let at = match files.iter().position(|(p, _, _)| *p == path) {
            Some(at) => at,
            None => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                files.push((path.clone(), text.clone(), text));
                files.len() - 1
            }
        };
        let (_, _, wanted) = &mut files[at];
        *wanted = replace(wanted, section.id, &(section.body)(&plugins))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(files
        .into_iter()
        .filter(|(_, now, wanted)| now != wanted)
        .map(|(path, _, wanted)| (path, wanted))
        .collect())
}

/// Rewrites the generated sections that disagree with `root/plugins/`; returns
/// the files it changed.
pub fn refresh(root: &Path) -> Result<Vec<PathBuf>> {
    let stale = stale(root)?;
    for (path, text) in &stale {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(stale.into_iter().map(|(path, _)| path).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::root;

    #[test]
    fn the_generated_sections_match_the_plugins_directory() {
        let stale = stale(&root()).unwrap();
        let files: Vec<String> = stale.iter().map(|(p, _)| p.display().to_string()).collect();
        assert!(
            files.is_empty(),
            "the generated sections of {} disagree with plugins/: run `cargo xtask build-all` \
             to refresh them (a plugin directory added or removed by hand)",
            files.join(", ")
        );
    }

    #[test]
    fn a_section_is_replaced_between_its_markers_only() {
        let text =
            "[a]\nx = 1\n# BEGIN GENERATED plugins\nold = 1\n# END GENERATED plugins\ny = 2\n";
        let got = replace(text, "plugins", &["new = 2".into(), "more = 3".into()]).unwrap();
        assert_eq!(
            got,
            "[a]\nx = 1\n# BEGIN GENERATED plugins\nnew = 2\nmore = 3\n# END GENERATED plugins\ny = 2\n"
        );
        assert_eq!(replace(&got, "plugins", &[]).unwrap().lines().count(), 5);
        let err = replace("[a]\n", "features", &[]).unwrap_err();
        assert_eq!(
            err,
            "no section between '# BEGIN GENERATED features' and '# END GENERATED features'"
        );
        let err = replace("# END GENERATED p\n# BEGIN GENERATED p\n", "p", &[]).unwrap_err();
        assert_eq!(
            err,
            "'# END GENERATED p' comes before '# BEGIN GENERATED p'"
        );
    }

    #[test]
    fn the_chain_links_every_plugin_but_itself() {
        let plugin = |name: &str, schema| Plugin {
            name: name.into(),
            schema,
        };
        let plugins = [
            plugin("a-b", true),
            plugin("chain", false),
            plugin("c", false),
        ];
        assert_eq!(
            xtask_dependencies(&plugins),
            [
                r#"a-b = { path = "../plugins/a-b", features = ["schema"] }"#,
                r#"chain = { path = "../plugins/chain" }"#,
                r#"c = { path = "../plugins/c" }"#,
            ]
        );
        assert_eq!(
            chain_dependencies(&plugins),
            [
                r#"a-b = { path = "../a-b", default-features = false, optional = true }"#,
                r#"c = { path = "../c", default-features = false, optional = true }"#,
            ]
        );
        assert_eq!(
            chain_features(&plugins),
            [
                "default = [",
                r#"    "a-b","#,
                r#"    "c","#,
                "]",
                r#"a-b = ["dep:a-b"]"#,
                r#"c = ["dep:c"]"#,
            ]
        );
    }

    #[test]
    fn a_schema_feature_is_read_from_the_features_table_only() {
        let manifest = "[dependencies]\nschema = \"1\"\n\n[features]\n# schema = []\nmodule = []\n";
        assert!(!has_feature(manifest, "schema"));
        assert!(has_feature(
            &format!("{manifest}schema = [\"dep:x\"]\n"),
            "schema"
        ));
    }

    /// A plugin added by hand (a copied directory) shows up as a stale section,
    /// and refreshing writes exactly what the check wants.
    #[test]
    fn a_plugin_directory_added_by_hand_makes_the_sections_stale() {
        let dir = std::env::temp_dir().join(format!("plugin-lists-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for file in ["xtask/Cargo.toml", "plugins/chain/Cargo.toml"] {
            let to = dir.join(file);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root().join(file), to).unwrap();
        }
        assert!(
            stale(&dir).unwrap().len() == 2,
            "only the chain there: both files differ"
        );
        refresh(&dir).unwrap();
        assert!(stale(&dir).unwrap().is_empty());
        std::fs::create_dir_all(dir.join("plugins/extra")).unwrap();
        std::fs::write(dir.join("plugins/extra/Cargo.toml"), "[package]\n").unwrap();
        let stale_files: Vec<PathBuf> = stale(&dir).unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            stale_files,
            [
                dir.join("xtask/Cargo.toml"),
                dir.join("plugins/chain/Cargo.toml")
            ]
        );
        refresh(&dir).unwrap();
        let chain = std::fs::read_to_string(dir.join("plugins/chain/Cargo.toml")).unwrap();
        assert!(chain.contains("extra = [\"dep:extra\"]"), "{chain}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
