//! Makes xtask's list of plugins (`src/plugins.rs`'s `PLUGINS`) from the
//! generated section of its Cargo.toml, which names every crate under
//! `plugins/` (see `src/plugin_lists.rs`): the list is exactly the plugins xtask
//! links, so it compiles whatever the directory holds, and a unit test says
//! when the section falls behind it.

use std::fmt::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::fs::read_to_string("Cargo.toml")?;
    let mut list = String::from("&[\n");
    for (name, line) in section(&manifest, "plugins") {
        let krate = name.replace('-', "_");
        // With its `schema` feature on, a plugin's config is read as
        // `config::Spec`, whose JSON Schema build-all writes.
        let schema = match line.contains("\"schema\"") {
            true => format!("schema_of::<{krate}::config::Spec>"),
            false => "|| None".to_string(),
        };
        if name == "chain" {
            // The module that holds every other plugin is not a Plugin itself.
            writeln!(
                list,
                "    Plugin {{ name: chain::config::NAME, check: chain, schema: {schema} }},"
            )?;
        } else {
            writeln!(
                list,
                "    Plugin {{ name: <{krate}::Exported as common::Plugin>::NAME, check: check::<{krate}::Exported>, schema: {schema} }},"
            )?;
        }
    }
    list.push(']');
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("plugins.rs");
    std::fs::write(out, list)?;
    Ok(())
}

/// The lines between `# BEGIN GENERATED <id>` and `# END GENERATED <id>`, each
/// with its key.
fn section(manifest: &str, id: &str) -> Vec<(String, String)> {
    let begin = format!("# BEGIN GENERATED {id}");
    let end = format!("# END GENERATED {id}");
    manifest
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| Some((l.split('=').next()?.trim().to_string(), l.to_string())))
        .collect()
}
