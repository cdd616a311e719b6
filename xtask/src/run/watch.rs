//! `run --watch`: a polling watcher over the gateway file and the sources (or the
//! `--modules` directory) that reports a change once the files stop changing.

use super::STOP;
use crate::gateway;
use crate::util;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

/// A polling watcher: modification times and sizes of the watched files.
pub struct Watcher {
    gateway: PathBuf,
    /// Source trees (`plugins/`, `common/`) or the `--modules` directory.
    sources: Vec<PathBuf>,
    last: (Snapshot, Snapshot),
}

type Snapshot = BTreeMap<PathBuf, (Option<SystemTime>, u64)>;

pub struct Change {
    pub what: String,
    /// Sources changed (a rebuild is due), not only the gateway file.
    pub sources: bool,
}

impl Watcher {
    pub fn new(gateway: &Path, modules: Option<&Path>) -> Watcher {
        let sources = match modules {
            Some(dir) => vec![dir.to_path_buf()],
            None => vec![util::root().join("plugins"), util::root().join("common")],
        };
        let mut w = Watcher {
            gateway: gateway.to_path_buf(),
            sources,
            last: Default::default(),
        };
        w.last = w.snapshot();
        w
    }

    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self
            .sources
            .iter()
            .map(|s| format!("{}/", gateway::display(s)))
            .collect();
        names.push(gateway::display(&self.gateway));
        names.join(", ")
    }

    fn snapshot(&self) -> (Snapshot, Snapshot) {
        let mut gateway = Snapshot::new();
        stat(&self.gateway, &mut gateway);
        let mut sources = Snapshot::new();
        for dir in &self.sources {
            walk(dir, &mut sources);
        }
        (gateway, sources)
    }

    /// A change since the last poll, once the files have stopped changing (editors
    /// often write in several steps), or after 5 s of steady writing, so a file
    /// that never stops changing cannot keep Ctrl-C waiting.
    pub fn poll(&mut self) -> Option<Change> {
        let mut now = self.snapshot();
        if now == self.last {
            return None;
        }
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let again = self.snapshot();
            if again == now || STOP.load(Ordering::SeqCst) {
                break;
            }
            now = again;
        }
        let changed: Vec<String> = diff(&self.last.0, &now.0)
            .chain(diff(&self.last.1, &now.1))
            .map(|p| gateway::display(&p))
            .collect();
        let sources = self.last.1 != now.1;
        self.last = now;
        Some(Change {
            what: changed.join(", "),
            sources,
        })
    }
}

fn diff<'a>(a: &'a Snapshot, b: &'a Snapshot) -> impl Iterator<Item = PathBuf> + 'a {
    let keys: BTreeSet<&PathBuf> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned()
}

fn stat(path: &Path, out: &mut Snapshot) {
    if let Ok(meta) = std::fs::metadata(path) {
        out.insert(path.to_path_buf(), (meta.modified().ok(), meta.len()));
    }
}

fn walk(dir: &Path, out: &mut Snapshot) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            stat(&path, out);
        }
    }
}
