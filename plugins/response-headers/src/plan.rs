//! The header changes of one direction, compiled once at configure time into the
//! shortest list of host operations, and carried out per request against any
//! [`Headers`] (the host's header map in the plugin, a mock in tests).

use common::ConfigError;

/// What an entry does, named after Envoy's `HeaderValueOption.append_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Replace every existing value, or add the header when absent
    /// (`OVERWRITE_IF_EXISTS_OR_ADD`).
    Set,
    /// Add one more value, keeping existing ones (`APPEND_IF_EXISTS_OR_ADD`).
    Append,
    /// Add only when the header is absent (`ADD_IF_ABSENT`).
    AddIfAbsent,
    /// Replace every existing value only when the header is present
    /// (`OVERWRITE_IF_EXISTS`).
    OverwriteIfExists,
}

impl Action {
    /// Every action with its configuration name, the default first.
    pub const ALL: [(&'static str, Action); 4] = [
        ("set", Action::Set),
        ("append", Action::Append),
        ("add_if_absent", Action::AddIfAbsent),
        ("overwrite_if_exists", Action::OverwriteIfExists),
    ];

    pub fn from_name(name: &str) -> Option<Action> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, action)| *action)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("", |(n, _)| n)
    }
}

/// One host operation. Names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Remove every value.
    Remove(String),
    /// Add one value, keeping existing ones.
    Add(String, String),
    /// Remove every value, then add this one.
    Replace(String, String),
    /// Read whether the header exists; add only when it does not.
    AddIfAbsent(String, String),
    /// Read whether the header exists; replace only when it does.
    ReplaceIfPresent(String, String),
}

/// The header map of one request or response, as the plugin may change it.
pub trait Headers {
    /// Whether the header has at least one value.
    fn contains(&mut self, name: &str) -> bool;
    fn add(&mut self, name: &str, value: &str);
    /// Removes every value of `name`, then adds `value`.
    fn replace(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
}

/// The operations for one direction, in the order they run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    ops: Vec<Op>,
}

impl Plan {
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Carries the plan out. Reads a header only for an entry whose effect depends on
    /// whether it exists and whose presence the configuration does not already fix.
    pub fn apply(&self, headers: &mut impl Headers) {
        for op in &self.ops {
            match op {
                Op::Remove(name) => headers.remove(name),
                Op::Add(name, value) => headers.add(name, value),
                Op::Replace(name, value) => headers.replace(name, value),
                Op::AddIfAbsent(name, value) => {
                    if !headers.contains(name) {
                        headers.add(name, value);
                    }
                }
                Op::ReplaceIfPresent(name, value) => {
                    if headers.contains(name) {
                        headers.replace(name, value);
                    }
                }
            }
        }
    }
}

/// Whether a header is known to be there at some point of the plan, and which
/// configuration entry made it so (for the error when an entry could never act).
#[derive(Debug)]
struct Known {
    name: String,
    present: bool,
    because: String,
}

/// Builds a [`Plan`]: all removals first, then the entries in order. It tracks what
/// earlier steps already fix about each header, so that no read is spent on a
/// question the configuration answers, and an entry that could never act is refused.
#[derive(Debug, Default)]
pub struct Builder {
    ops: Vec<Op>,
    known: Vec<Known>,
}

impl Builder {
    fn known(&self, name: &str) -> Option<&Known> {
        self.known.iter().find(|k| k.name == name)
    }

    fn learn(&mut self, name: &str, present: bool, because: &str) {
        match self.known.iter_mut().find(|k| k.name == name) {
            Some(k) => {
                k.present = present;
                k.because = because.to_string();
            }
            None => self.known.push(Known {
                name: name.to_string(),
                present,
                because: because.to_string(),
            }),
        }
    }

    /// Removes header `name` (lowercase), listed at `path`. Call it for every removal
    /// before the first [`Builder::entry`]: removals run first. A name listed twice
    /// is removed once.
    pub fn remove(&mut self, name: &str, path: &str) {
        if self.known(name).is_some() {
            return;
        }
        self.ops.push(Op::Remove(name.to_string()));
        self.learn(name, false, path);
    }

    /// Adds the entry at `path`: header `name` (lowercase), `value`, `action`.
    pub fn entry(
        &mut self,
        name: &str,
        value: &str,
        action: Action,
        path: &str,
    ) -> Result<(), ConfigError> {
        let known = self.known(name).map(|k| (k.present, k.because.clone()));
        let (n, v) = (name.to_string(), value.to_string());
        let op = match (action, known) {
            (Action::Set, Some((false, _))) => Op::Add(n, v),
            (Action::Set, _) => Op::Replace(n, v),
            (Action::Append, _) => Op::Add(n, v),
            (Action::AddIfAbsent, None) => Op::AddIfAbsent(n, v),
            (Action::AddIfAbsent, Some((false, _))) => Op::Add(n, v),
            (Action::AddIfAbsent, Some((true, because))) => {
                return Err(ConfigError::new(
                    path,
                    format!(
                        "'{name}' is always present here (because of {because}), \
                         so add_if_absent never adds it"
                    ),
                ))
            }
            (Action::OverwriteIfExists, None) => Op::ReplaceIfPresent(n, v),
            (Action::OverwriteIfExists, Some((true, _))) => Op::Replace(n, v),
            (Action::OverwriteIfExists, Some((false, because))) => {
                return Err(ConfigError::new(
                    path,
                    format!(
                        "'{name}' is always absent here (because of {because}), \
                         so overwrite_if_exists never applies"
                    ),
                ))
            }
        };
        self.ops.push(op);
        // overwrite_if_exists leaves presence as it was: known stays known, unknown
        // stays unknown. Every other action leaves the header present.
        if action != Action::OverwriteIfExists {
            self.learn(name, true, path);
        }
        Ok(())
    }

    pub fn finish(self) -> Plan {
        Plan { ops: self.ops }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A header map with Envoy's semantics for the four host calls: names are
    /// compared as given (the plugin only sends lowercase names), `replace` drops
    /// every value and adds one, `contains` counts as one read.
    #[derive(Debug, Default)]
    pub struct Mock {
        pub pairs: Vec<(String, String)>,
        pub reads: usize,
        pub calls: usize,
    }

    impl Mock {
        pub fn with(pairs: &[(&str, &str)]) -> Self {
            Mock {
                pairs: pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }
        }

        pub fn values(&self, name: &str) -> Vec<&str> {
            self.pairs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    impl Headers for Mock {
        fn contains(&mut self, name: &str) -> bool {
            self.reads += 1;
            self.pairs.iter().any(|(n, _)| n == name)
        }
        fn add(&mut self, name: &str, value: &str) {
            self.calls += 1;
            self.pairs.push((name.to_string(), value.to_string()));
        }
        fn replace(&mut self, name: &str, value: &str) {
            self.calls += 1;
            self.pairs.retain(|(n, _)| n != name);
            self.pairs.push((name.to_string(), value.to_string()));
        }
        fn remove(&mut self, name: &str) {
            self.calls += 1;
            self.pairs.retain(|(n, _)| n != name);
        }
    }

    /// Entries as (name, value, action).
    type Entries<'a> = &'a [(&'a str, &'a str, Action)];

    fn plan(removals: &[&str], entries: Entries<'_>) -> Result<Plan, ConfigError> {
        let mut b = Builder::default();
        for (i, name) in removals.iter().enumerate() {
            b.remove(name, &format!("remove[{i}]"));
        }
        for (i, (name, value, action)) in entries.iter().enumerate() {
            b.entry(name, value, *action, &format!("add[{i}]"))?;
        }
        Ok(b.finish())
    }

    #[test]
    fn action_names_round_trip() {
        for (name, action) in Action::ALL {
            assert_eq!(Action::from_name(name), Some(action));
            assert_eq!(action.name(), name);
        }
        assert_eq!(Action::from_name("upsert"), None);
        assert_eq!(Action::from_name("SET"), None);
    }

    /// Each action against none, one and two existing values: the values after, and
    /// how many reads it took (one only for the two conditional actions).
    #[test]
    fn each_action_against_none_one_and_two_values() {
        use Action::*;
        let existing: [&[&str]; 3] = [&[], &["old"], &["old1", "old2"]];
        let cases: &[(Action, [&[&str]; 3], usize)] = &[
            (Set, [&["new"], &["new"], &["new"]], 0),
            (
                Append,
                [&["new"], &["old", "new"], &["old1", "old2", "new"]],
                0,
            ),
            (AddIfAbsent, [&["new"], &["old"], &["old1", "old2"]], 1),
            (OverwriteIfExists, [&[], &["new"], &["new"]], 1),
        ];
        for (action, expected, reads) in cases {
            let p = plan(&[], &[("x", "new", *action)]).unwrap();
            for (before, after) in existing.iter().zip(expected) {
                let pairs: Vec<_> = before.iter().map(|v| ("x", *v)).collect();
                let mut h = Mock::with(&pairs);
                h.pairs.push(("other".into(), "kept".into()));
                p.apply(&mut h);
                assert_eq!(h.values("x"), *after, "{action:?} on {before:?}");
                assert_eq!(h.values("other"), ["kept"], "{action:?} on {before:?}");
                assert_eq!(h.reads, *reads, "{action:?} on {before:?}");
            }
        }
    }

    #[test]
    fn removals_run_before_entries_and_once_per_name() {
        let p = plan(
            &["server", "x-powered-by", "server"],
            &[("via", "mesh", Action::Append)],
        )
        .unwrap();
        assert_eq!(
            p.ops(),
            [
                Op::Remove("server".into()),
                Op::Remove("x-powered-by".into()),
                Op::Add("via".into(), "mesh".into()),
            ]
        );
        let mut h = Mock::with(&[("server", "a"), ("server", "b"), ("via", "1.1 up")]);
        p.apply(&mut h);
        assert!(h.values("server").is_empty());
        assert_eq!(h.values("via"), ["1.1 up", "mesh"]);
    }

    /// What earlier steps fix about a header turns conditional actions into plain
    /// ones, so no read is spent on them.
    #[test]
    fn known_presence_needs_no_read() {
        use Action::*;
        let cases: &[(&str, &[&str], Entries, &[Op])] = &[
            (
                "removed, then add_if_absent: a plain add",
                &["x"],
                &[("x", "1", AddIfAbsent)],
                &[Op::Remove("x".into()), Op::Add("x".into(), "1".into())],
            ),
            (
                "removed, then set: a plain add",
                &["x"],
                &[("x", "1", Set)],
                &[Op::Remove("x".into()), Op::Add("x".into(), "1".into())],
            ),
            (
                "set, then overwrite_if_exists: a plain replace",
                &[],
                &[("x", "1", Set), ("x", "2", OverwriteIfExists)],
                &[
                    Op::Replace("x".into(), "1".into()),
                    Op::Replace("x".into(), "2".into()),
                ],
            ),
            (
                "add_if_absent leaves it present",
                &[],
                &[("x", "1", AddIfAbsent), ("x", "2", OverwriteIfExists)],
                &[
                    Op::AddIfAbsent("x".into(), "1".into()),
                    Op::Replace("x".into(), "2".into()),
                ],
            ),
            (
                "overwrite_if_exists on unknown leaves it unknown",
                &[],
                &[("x", "1", OverwriteIfExists), ("x", "2", AddIfAbsent)],
                &[
                    Op::ReplaceIfPresent("x".into(), "1".into()),
                    Op::AddIfAbsent("x".into(), "2".into()),
                ],
            ),
            (
                "other names are independent",
                &["y"],
                &[("x", "1", AddIfAbsent)],
                &[
                    Op::Remove("y".into()),
                    Op::AddIfAbsent("x".into(), "1".into()),
                ],
            ),
            (
                "set then append: two values",
                &[],
                &[("x", "1", Set), ("x", "2", Append)],
                &[
                    Op::Replace("x".into(), "1".into()),
                    Op::Add("x".into(), "2".into()),
                ],
            ),
        ];
        for (name, removals, entries, ops) in cases {
            let p = plan(removals, entries).unwrap();
            assert_eq!(p.ops(), *ops, "{name}");
        }
    }

    #[test]
    fn entries_that_can_never_act_are_refused() {
        use Action::*;
        let cases: &[(&[&str], Entries, &str)] = &[
            (
                &["x"],
                &[("x", "1", OverwriteIfExists)],
                "add[0]: 'x' is always absent here (because of remove[0]), so overwrite_if_exists never applies",
            ),
            (
                &[],
                &[("x", "1", Set), ("x", "2", AddIfAbsent)],
                "add[1]: 'x' is always present here (because of add[0]), so add_if_absent never adds it",
            ),
            (
                &["x"],
                &[("x", "1", Append), ("x", "2", AddIfAbsent)],
                "add[1]: 'x' is always present here (because of add[0]), so add_if_absent never adds it",
            ),
        ];
        for (removals, entries, expected) in cases {
            let err = plan(removals, entries).unwrap_err();
            assert_eq!(err.to_string(), *expected);
        }
    }

    #[test]
    fn entries_apply_in_order_each_seeing_the_last() {
        use Action::*;
        let p = plan(
            &["x-powered-by"],
            &[
                ("hello", "world", Set),
                ("x-frame-options", "DENY", AddIfAbsent),
                ("via", "mesh", Append),
                ("cache-control", "no-store", OverwriteIfExists),
            ],
        )
        .unwrap();
        let mut h = Mock::with(&[
            ("x-powered-by", "php"),
            ("hello", "a"),
            ("hello", "b"),
            ("x-frame-options", "SAMEORIGIN"),
            ("cache-control", "max-age=60"),
        ]);
        p.apply(&mut h);
        assert!(h.values("x-powered-by").is_empty());
        assert_eq!(h.values("hello"), ["world"]);
        assert_eq!(h.values("x-frame-options"), ["SAMEORIGIN"]);
        assert_eq!(h.values("via"), ["mesh"]);
        assert_eq!(h.values("cache-control"), ["no-store"]);
        assert_eq!(h.reads, 2);
        assert_eq!(h.calls, 4);
    }

    #[test]
    fn an_empty_plan_touches_nothing() {
        let p = Plan::default();
        assert!(p.is_empty());
        let mut h = Mock::with(&[("a", "1")]);
        p.apply(&mut h);
        assert_eq!((h.reads, h.calls), (0, 0));
    }
}
