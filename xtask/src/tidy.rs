//! Tidy checks run as tests: house rules that are cheap to check mechanically
//! (a `//!` line in every file, no stubs in plugins, xtask's module shape).

use crate::util::root;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 5, "found only {files:?}");
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line: {missing:?}"
    );
}

#[test]
fn plugin_code_has_no_todo_stubs() {
    let mut files = Vec::new();
    rust_files(&root().join("plugins"), &mut files);
    rust_files(&root().join("common"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for stub in ["todo!(", "unimplemented!("] {
            assert!(!text.contains(stub), "{} contains {stub}", f.display());
        }
    }
}

/// The top-level modules a file's code names through `crate::`: `crate::a::b`,
/// `use crate::{a::{b, c}, d}` and `crate::e::f()` name `a`, `d` and `e`. Line
/// comments are dropped first so a doc comment's example is not an import.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `crate::` preceded by a name character is another path (`mycrate::`).
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        let Some(group) = rest.strip_prefix('{') else {
            refs.insert(ident(rest));
            continue;
        };
        // A group: the first name of each item at depth one.
        let (mut depth, mut item_start) = (1, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => item_start = true,
                c if item_start && depth == 1 && !c.is_whitespace() => {
                    refs.insert(ident(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    refs.remove("");
    refs
}

/// The modules `main.rs` declares, and among them the commands: those it dispatches
/// to (`name::run_command`), and `tidy`, the checks run as tests.
fn modules_and_commands(main: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let modules: BTreeSet<String> = main
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .map(str::to_string)
        .collect();
    let mut commands: BTreeSet<String> = main
        .match_indices("::run_command(")
        .map(|(at, _)| {
            let before = &main[..at];
            let start = before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            before[start..].to_string()
        })
        .collect();
    commands.insert("tidy".to_string());
    (modules, commands)
}

/// Each top-level module and the other top-level modules its files name.
fn module_graph(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Ok(rel) = file.strip_prefix(src) else {
            continue;
        };
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        let Some(owner) = first.map(|f| f.trim_end_matches(".rs").to_string()) else {
            continue;
        };
        if owner == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let deps = graph.entry(owner.clone()).or_default();
        deps.extend(
            crate_refs(&text)
                .into_iter()
                .filter(|m| *m != owner && modules.contains(m)),
        );
    }
    graph
}

/// A cycle in `graph`, as the modules around it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// xtask's shape (rust-analyzer's xtask is the model): each command a module that
/// nothing else imports, so a command can change without breaking another; what
/// commands share lives in modules of its own, which import no command and form no
/// cycle, so each can be read and tested from the bottom up.
#[test]
fn no_command_module_is_imported_and_shared_modules_form_no_cycle() {
    let src = root().join("xtask").join("src");
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
    let (modules, commands) = modules_and_commands(&main);
    // Guards against the parsing going blind (then every check would pass).
    for expected in ["build_all", "run", "test", "bench", "fuzz", "push", "tidy"] {
        assert!(commands.contains(expected), "{commands:?}");
        assert!(modules.contains(expected), "{modules:?}");
    }
    let graph = module_graph(&src, &modules);
    assert!(graph["build_all"].contains("gateway"), "{graph:?}");

    let imported: Vec<String> = graph
        .iter()
        .flat_map(|(from, deps)| {
            deps.iter()
                .filter(|to| commands.contains(*to))
                .map(move |to| format!("{from} -> {to}"))
        })
        .collect();
    assert!(
        imported.is_empty(),
        "command modules imported by other modules (move what they share to a shared \
         module): {imported:?}"
    );
    let shared: BTreeMap<String, BTreeSet<String>> = graph
        .into_iter()
        .filter(|(m, _)| !commands.contains(m))
        .collect();
    if let Some(cycle) = find_cycle(&shared) {
        panic!(
            "shared modules import each other in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn crate_paths_in_uses_and_expressions_are_found() {
    let text = "use crate::{a::{b, c}, d};\nuse crate::e::F;\n\
                let x = crate::f::g(); // crate::not_this\n/// crate::nor_this\n\
                use mycrate::h;\nuse crate::{\n    i,\n    j::{self, K},\n};\n";
    let found: Vec<_> = crate_refs(text).into_iter().collect();
    assert_eq!(found, ["a", "d", "e", "f", "i", "j"]);
}

#[test]
fn commands_are_what_main_dispatches_to() {
    let main = "mod a;\nmod b;\n#[cfg(test)]\nmod tidy;\n\
                Some(\"a-b\") => a::run_command(&args[1..]),";
    let (modules, commands) = modules_and_commands(main);
    assert_eq!(modules.into_iter().collect::<Vec<_>>(), ["a", "b", "tidy"]);
    assert_eq!(commands.into_iter().collect::<Vec<_>>(), ["a", "tidy"]);
}

#[test]
fn a_cycle_is_found_and_a_tree_is_not_one() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
        g
    };
    let tree = graph(&[("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]);
    assert_eq!(find_cycle(&tree), None);
    let circle = graph(&[("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")]);
    assert_eq!(find_cycle(&circle).unwrap(), ["b", "c", "d", "b"]);
}
