//! Makes the chain module's list of plugins (`config::PLUGINS`) from the
//! generated section of its Cargo.toml, which names every other crate under
//! `plugins/` (see xtask's `src/plugin_lists.rs`): each entry is compiled only
//! with its feature, so the module holds just the plugins it is built with.

use std::fmt::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = std::fs::read_to_string("Cargo.toml")?;
    let mut list = String::from("&[\n");
    for name in section(&manifest, "plugins") {
        let krate = name.replace('-', "_");
        writeln!(list, "    #[cfg(feature = \"{name}\")]")?;
        writeln!(
            list,
            "    (<{krate}::Exported as Plugin>::NAME, make::<{krate}::Exported>),"
        )?;
    }
    list.push(']');
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("plugins.rs");
    std::fs::write(out, list)?;
    Ok(())
}

/// The keys of the lines between `# BEGIN GENERATED <id>` and `# END GENERATED <id>`.
fn section(manifest: &str, id: &str) -> Vec<String> {
    let begin = format!("# BEGIN GENERATED {id}");
    let end = format!("# END GENERATED {id}");
    manifest
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != begin)
        .skip(1)
        .take_while(|l| *l != end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
        .map(|key| key.trim().to_string())
        .collect()
}
