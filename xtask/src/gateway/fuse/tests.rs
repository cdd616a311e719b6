//! The fusion rules, table-driven: which instances fuse, every reason two
//! neighbours do not, and what a chain is named and carries.

use super::*;
use crate::gateway::parse;
use std::path::Path;

/// A gateway `gw` with `head` (gateway-level lines, `chain: true` say) and the
/// instances, one flow mapping each.
fn gateway(head: &str, instances: &[&str]) -> Gateway {
    let mut text =
        format!("name: gw\nnamespace: d\nselector: {{app: a}}\nurl: oci://r/p\n{head}plugins:\n");
    for i in instances {
        text.push_str(&format!("  - {{{i}}}\n"));
    }
    parse(Path::new("gw.yaml"), "gw.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The filters as `a+b, c`: instances of one filter joined with `+`.
fn groups(plan: &Plan) -> String {
    let groups: Vec<String> = plan.filters.iter().map(|f| f.names("+")).collect();
    groups.join(", ")
}

const ON: &str = "chain: true\n";

/// (case, gateway lines, instances, filters, report)
type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, &'a [&'a str]);
const H: &str = "plugin: header-authorization";

#[test]
fn which_instances_fuse_and_why_not() {
    let cases: &[Case] = &[
        (
            "off by default: today's filters, nothing to say",
            "",
            &[&format!("{H}, name: a"), &format!("{H}, name: b")],
            "a, b",
            &[],
        ),
        (
            "chain: false is the default said out loud",
            "chain: false\n",
            &[&format!("{H}, name: a"), &format!("{H}, name: b")],
            "a, b",
            &[],
        ),
        (
            "on: neighbours alike fuse, in chain order, named after the first",
            ON,
            &[
                &format!("{H}, name: c, priority: 1"),
                "plugin: basic-auth, name: b, priority: 5, config: {basic_auth_rules: [{prefix: /, request_methods: [GET], credentials: ['u:p']}]}",
                &format!("{H}, name: a, priority: 5"),
            ],
            "a+b+c",
            &["chain gw-a: a + b + c"],
        ),
        (
            "different phases",
            ON,
            &[&format!("{H}, name: a, phase: AUTHN"), &format!("{H}, name: b, phase: AUTHZ")],
            "a, b",
            &["b not fused with a: different phase (AUTHN, AUTHZ)"],
        ),
        (
            "different failStrategy",
            ON,
            &[&format!("{H}, name: a"), &format!("{H}, name: b, failStrategy: FAIL_RELOAD")],
            "a, b",
            &["b not fused with a: different failStrategy (FAIL_CLOSE, FAIL_RELOAD)"],
        ),
        (
            "different match",
            ON,
            &[&format!("{H}, name: a, match: [{{mode: SERVER}}]"), &format!("{H}, name: b")],
            "a, b",
            &["b not fused with a: different match"],
        ),
        (
            "the same match fuses",
            ON,
            &[
                &format!("{H}, name: a, match: [{{mode: SERVER, ports: [{{number: 80}}]}}]"),
                &format!("{H}, name: b, match: [{{ports: [{{number: 80}}], mode: SERVER}}]"),
            ],
            "a+b",
            &["chain gw-a: a + b"],
        ),
        (
            "different env",
            ON,
            &[
                &format!("{H}, name: a, env: [{{name: A, value: '1'}}]"),
                &format!("{H}, name: b, env: [{{name: A, value: '2'}}]"),
            ],
            "a, b",
            &["b not fused with a: different env (vmConfig.env)"],
        ),
        (
            "the same env in another order fuses",
            ON,
            &[
                &format!("{H}, name: a, env: [{{name: A, value: '1'}}, {{name: B, valueFrom: HOST}}]"),
                &format!("{H}, name: b, env: [{{name: B, valueFrom: HOST}}, {{name: A, value: '1'}}]"),
            ],
            "a+b",
            &["chain gw-a: a + b"],
        ),
        (
            "different imagePullPolicy (the gateway's is the default)",
            "chain: true\nimagePullPolicy: Always\n",
            &[&format!("{H}, name: a"), &format!("{H}, name: b, imagePullPolicy: IfNotPresent")],
            "a, b",
            &["b not fused with a: different imagePullPolicy (Always, IfNotPresent)"],
        ),
        (
            "different imagePullSecret",
            ON,
            &[&format!("{H}, name: a, imagePullSecret: s"), &format!("{H}, name: b")],
            "a, b",
            &["b not fused with a: different imagePullSecret (s, none)"],
        ),
        (
            "opted out in the middle: its neighbours are not consecutive",
            ON,
            &[
                &format!("{H}, name: a, priority: 3"),
                &format!("{H}, name: b, priority: 2, chain: false"),
                &format!("{H}, name: c, priority: 1"),
            ],
            "a, b, c",
            &[
                "b not fused with a: opted out (b has chain: false)",
                "c not fused with b: opted out (b has chain: false)",
            ],
        ),
        (
            "opted in on a gateway without chain",
            "",
            &[
                &format!("{H}, name: a, priority: 3, chain: true"),
                &format!("{H}, name: b, priority: 2, chain: true"),
                &format!("{H}, name: c, priority: 1"),
                &format!("{H}, name: d, priority: 0"),
            ],
            "a+b, c, d",
            &[
                "chain gw-a: a + b",
                "c not fused with b: not opted in (c has no chain: true, nor has the gateway)",
            ],
        ),
        (
            "alike but not consecutive in chain order",
            ON,
            &[
                &format!("{H}, name: a, phase: AUTHN"),
                &format!("{H}, name: b, phase: AUTHZ, failStrategy: FAIL_OPEN"),
                &format!("{H}, name: c, phase: AUTHN"),
            ],
            "a+c, b",
            &[
                "chain gw-a: a + c",
                "b not fused with c: different phase (AUTHN, AUTHZ); different failStrategy (FAIL_CLOSE, FAIL_OPEN)",
            ],
        ),
        (
            "every reason at once",
            ON,
            &[
                &format!("{H}, name: a, phase: AUTHN, chain: false"),
                &format!(
                    "{H}, name: b, phase: STATS, failStrategy: FAIL_OPEN, match: [{{mode: CLIENT}}], \
                     env: [{{name: X}}], imagePullPolicy: Always, imagePullSecret: s"
                ),
            ],
            "a, b",
            &["b not fused with a: opted out (a has chain: false); different phase (AUTHN, STATS); \
               different failStrategy (FAIL_CLOSE, FAIL_OPEN); different match; different env (vmConfig.env); \
               different imagePullPolicy (none, Always); different imagePullSecret (none, s)"],
        ),
        (
            "a chain instance does not run inside a chain",
            ON,
            &[
                &format!("{H}, name: a"),
                "plugin: chain, name: b, config: {chain: [{plugin: header-authorization}]}",
            ],
            "a, b",
            &["b not fused with a: b's plugin chain does not run inside a chain"],
        ),
    ];
    for (case, head, instances, expected, report) in cases {
        let g = gateway(head, instances);
        let plan = g.filters();
        assert_eq!(groups(&plan), *expected, "{case}");
        assert_eq!(plan.report(), *report, "{case}");
        assert_eq!(plan.splits.len() + 1, plan.filters.len(), "{case}");
    }
}

#[test]
fn a_full_chain_starts_another() {
    let max = chain::config::MAX_INSTANCES;
    let names: Vec<String> = (0..=max).map(|n| format!("{H}, name: i{n:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let g = gateway(ON, &refs);
    let plan = g.filters();
    let sizes: Vec<usize> = plan.filters.iter().map(|f| f.instances.len()).collect();
    assert_eq!(sizes, [max, 1]);
    assert_eq!(
        plan.report()[1],
        format!(
            "i{max} not fused with i{:02}: the chain before it is full ({max} instances)",
            max - 1
        )
    );
    assert_eq!(plan.fused(), max);
}

#[test]
fn a_chain_carries_its_first_instances_settings_and_every_instances_config() {
    let g = gateway(
        ON,
        &[
            "plugin: response-headers, name: sec, phase: AUTHN, priority: 1000, failStrategy: FAIL_RELOAD, \
             config: {response_headers: [{name: x-a, value: b}]}",
            "plugin: dispatch-auth, name: ext, phase: AUTHN, priority: 10, failStrategy: FAIL_RELOAD, \
             config: {cluster: auth}",
            &format!("{H}, name: team, phase: AUTHN, priority: 20, failStrategy: FAIL_RELOAD, config: {{header: x-team}}"),
            &format!("{H}, name: bare, phase: AUTHN, priority: 5, failStrategy: FAIL_RELOAD"),
            &format!("{H}, name: alone, phase: STATS"),
        ],
    );
    let plan = g.filters();
    let [chain, alone] = plan.filters.as_slice() else {
        panic!("{plan:?}")
    };
    assert!(chain.is_chain());
    assert_eq!(chain.module(), "chain");
    assert_eq!(chain.key(), "sec");
    assert_eq!(chain.name("gw"), "gw-sec");
    let first = chain.first();
    assert_eq!(
        (first.phase, first.priority, first.fail_strategy),
        (Phase::Authn, 1000, FailStrategy::FailReload)
    );
    // In chain order; an instance without config gets `{}`, its plugin's defaults.
    assert_eq!(
        chain.config(),
        Some(json!({"chain": [
            {"plugin": "response-headers", "name": "sec", "config": {"response_headers": [{"name": "x-a", "value": "b"}]}},
            {"plugin": "header-authorization", "name": "team", "config": {"header": "x-team"}},
            {"plugin": "dispatch-auth", "name": "ext", "config": {"cluster": "auth"}},
            {"plugin": "header-authorization", "name": "bare", "config": {}},
        ]}))
    );
    assert_eq!(
        chain.config_json(),
        serde_json::to_string(&chain.config().unwrap()).unwrap()
    );
    // The chain module reads it back as those instances.
    let entries = chain::config::entries(&chain.config().unwrap()).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["sec", "team", "ext", "bare"]);
    // run's view: a request passes with every gate's header, and the chain calls
    // dispatch-auth's cluster.
    let checked = chain.checked();
    assert_eq!(checked.auth_clusters, ["auth"]);
    assert_eq!(
        checked.pass_headers,
        Some(vec![
            ("x-team".into(), "true".into()),
            ("authorization".into(), crate::plugins::DEMO_TOKEN.into()),
            ("allow".into(), "true".into()),
        ])
    );
    // A group of one stays a plain instance of its plugin, with its own config.
    assert!(!alone.is_chain());
    assert_eq!(alone.module(), "header-authorization");
    assert_eq!(alone.config(), None);
    assert_eq!(alone.name("gw"), "gw-alone");
    assert_eq!(g.modules(), ["chain", "header-authorization"]);
}

#[test]
fn each_chain_config_is_parsed_by_the_chain_module_too() {
    let mut g = gateway(
        ON,
        &[
            &format!("{H}, name: a, priority: 1"),
            &format!("{H}, name: b, config: {{header: x-b}}"),
        ],
    );
    assert_eq!(check(&g), Ok(()));
    // Were a config to pass its plugin's check and not the chain's, the chain's
    // error would stop the command, naming the chain's first instance.
    g.instances[1].config = Some(json!({"deny": {"status": 700}}));
    assert_eq!(
        check(&g),
        Err("plugins[0] (a): chain: chain[1] (b): deny.status: must be 200..=599, got 700".into())
    );
}

#[test]
fn filters_of_one_module_with_different_env_are_named() {
    let g = gateway(
        ON,
        &[
            &format!("{H}, name: a, phase: AUTHN, env: [{{name: A, value: '1'}}]"),
            &format!("{H}, name: b, phase: AUTHN, env: [{{name: A, value: '1'}}]"),
            &format!("{H}, name: c, phase: AUTHZ"),
            &format!("{H}, name: d, phase: AUTHZ"),
            &format!("{H}, name: e, phase: STATS, failStrategy: FAIL_OPEN"),
            "plugin: basic-auth, name: f, env: [{name: B, value: '2'}], config: {basic_auth_rules: [{prefix: /, request_methods: [GET], credentials: ['u:p']}]}",
        ],
    );
    // a+b is a chain with env A; c+d another without: one module, two envs. The
    // header-authorization filter e and basic-auth f are alone in their modules.
    assert_eq!(groups(&g.filters()), "a+b, c+d, e, f");
    assert_eq!(
        g.filters().env_clashes(),
        [(
            "chain".to_string(),
            vec!["gw-a".to_string(), "gw-c".to_string()]
        )]
    );
    let apart = gateway(
        "",
        &[
            &format!("{H}, name: a, env: [{{name: A}}]"),
            &format!("{H}, name: b"),
        ],
    );
    assert_eq!(
        apart.filters().env_clashes(),
        [(
            "header-authorization".to_string(),
            vec!["gw-a".to_string(), "gw-b".to_string()]
        )]
    );
    let examples = crate::gateway::select(&crate::gateway::default_dir(), None).unwrap();
    for example in &examples {
        assert_eq!(example.filters().env_clashes(), [], "{}", example.name);
    }
}
