//! One gateway file in both forms: its instances as separate filters, and fused
//! into chains (`chain: true`). Each form runs in its own `xtask run`, side by
//! side, and every request goes to both: they must answer alike (status, headers,
//! body; for the echo upstream, the request it saw), and as the chain order says.

use super::{gateway_file_with, plugin_module, Run};
use harness::envoy::dist_dir;
use harness::{scratch, Request, Response};
use std::path::{Path, PathBuf};

/// What a client can tell from a response, less what differs between two Envoys
/// or two requests: the date, the upstream's timing, and in what the echo upstream
/// saw, the Host (each Envoy has its port) and the request id.
fn observed(resp: &Response) -> (u16, Vec<(String, String)>, String) {
    let echo = resp.status == 200 && resp.header("content-type") == Some("application/json");
    let headers = resp
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !(name == "date"
                || name == "x-envoy-upstream-service-time"
                || (echo && name == "content-length"))
        })
        .cloned()
        .collect();
    let body = if echo {
        let mut seen = resp.echoed();
        seen.headers.retain(|(name, _)| {
            !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("x-request-id")
        });
        format!(
            "echo: {} {} {:?} {:?}",
            seen.method,
            seen.path,
            seen.headers,
            String::from_utf8_lossy(&seen.body)
        )
    } else {
        resp.text()
    };
    (resp.status, headers, body)
}

/// A gateway running in both forms at once.
struct Forms {
    apart: Run,
    fused: Run,
}

impl Forms {
    /// `apart` and `fused` are the same gateway but for their name and `chain`;
    /// both start together.
    fn start(apart: &Path, fused: &Path, modules: &Path) -> Forms {
        let (apart, fused) = (
            Run::spawn(apart, modules, false),
            Run::spawn(fused, modules, false),
        );
        Forms {
            apart: apart.listening(),
            fused: fused.listening(),
        }
    }

    /// `plugins` as gateway `name` (one filter each) and `<name>-chain` (`chain:
    /// true`): each run keeps its files in target/run/<gateway>/, so two names.
    fn of(dir: &Path, name: &str, plugins: &str, modules: &Path) -> Forms {
        let apart = gateway_file_with(dir, name, "", plugins);
        let fused = gateway_file_with(dir, &format!("{name}-chain"), "chain: true\n", plugins);
        Forms::start(&apart, &fused, modules)
    }

    /// Sends `request` to both forms; they must agree. Returns the answer.
    fn send(&self, request: &Request) -> Response {
        let apart = request.send(self.apart.addr);
        let fused = request.send(self.fused.addr);
        assert_eq!(
            observed(&apart),
            observed(&fused),
            "{} {} with {:?}: apart and fused answer differently",
            request.method,
            request.path,
            request.headers
        );
        fused
    }

    fn get(&self, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get("/");
        for (n, v) in headers {
            req = req.header(n, v);
        }
        self.send(&req)
    }

    /// Ctrl-C to both; both must exit cleanly.
    fn stop(mut self) {
        assert!(self.apart.interrupt().success(), "{}", self.apart.output());
        assert!(self.fused.interrupt().success(), "{}", self.fused.output());
    }
}

/// Two header-authorization instances, alpha and beta, each with its own header
/// and deny body, arranged in the file in the given order.
fn pair(first: (&str, &str), second: (&str, &str)) -> String {
    let instance = |(name, fields): (&str, &str)| {
        format!(
            "  - plugin: header-authorization\n    name: {name}\n{fields}    config: {{header: x-{name}, deny: {{body: \"{name}\\n\"}}}}\n"
        )
    };
    instance(first) + &instance(second)
}

#[test]
fn run_chains_filters_by_phase_then_priority_then_name_fused_or_not() {
    let dir = scratch("gateways-order");
    let modules = plugin_module().parent().unwrap().to_path_buf();
    // (case, file's first instance, second instance, which runs first, fused
    // when the gateway says chain: true)
    let cases = [
        (
            "different phases: AUTHN before STATS, whatever the names",
            ("alpha", "    phase: STATS\n"),
            ("beta", "    phase: AUTHN\n"),
            "beta",
            false,
        ),
        (
            "different phases: STATS before unspecified",
            ("alpha", ""),
            ("beta", "    phase: STATS\n    priority: -100\n"),
            "beta",
            false,
        ),
        (
            "one phase, the higher priority first",
            ("alpha", "    phase: AUTHZ\n    priority: 1\n"),
            ("beta", "    phase: AUTHZ\n    priority: 10\n"),
            "beta",
            true,
        ),
        (
            "one phase, the higher priority first, whatever the file order",
            ("beta", "    phase: AUTHZ\n    priority: -10\n"),
            ("alpha", "    phase: AUTHZ\n    priority: 10\n"),
            "alpha",
            true,
        ),
        (
            "equal priorities: by name, not by file order",
            ("beta", "    phase: AUTHZ\n    priority: 5\n"),
            ("alpha", "    phase: AUTHZ\n    priority: 5\n"),
            "alpha",
            true,
        ),
    ];
    for (case, first, second, expected, fuses) in cases {
        let other = if expected == "alpha" { "beta" } else { "alpha" };
        let forms = Forms::of(&dir, "order", &pair(first, second), &modules);
        for run in [&forms.apart, &forms.fused] {
            let output = run.output();
            assert!(
                output.contains(&format!("  1. {expected}"))
                    && output.contains(&format!("  2. {other}")),
                "{case}: printed order:\n{output}"
            );
        }
        // The chain, named after its first instance, or why there is none.
        let fused = forms.fused.output();
        let chain = format!("  chain order-chain-{expected}+");
        if fuses {
            assert!(fused.contains(&chain), "{case}:\n{fused}");
        } else {
            assert!(
                !fused.contains("  chain ")
                    && fused.contains(&format!(
                        "({other} not fused with {expected}: different phase"
                    )),
                "{case}:\n{fused}"
            );
        }
        assert!(!forms.apart.output().contains("  chain "), "{case}");
        // With no headers, the first in the chain answers.
        let denied = forms.get(&[]);
        assert_eq!(denied.status, 403, "{case}");
        assert_eq!(denied.text(), format!("{expected}\n"), "{case}");
        // Past the first, the second answers; past both, the upstream does.
        let header = format!("x-{expected}");
        let other_header = format!("x-{other}");
        let denied = forms.get(&[(&header, "true")]);
        assert_eq!(denied.text(), format!("{other}\n"), "{case}");
        let denied = forms.get(&[(&other_header, "true")]);
        assert_eq!(denied.text(), format!("{expected}\n"), "{case}");
        let passed = forms.get(&[(&header, "true"), (&other_header, "true")]);
        assert_eq!(passed.status, 200, "{case}: {}", passed.text());
        assert_eq!(passed.echoed().path, "/", "{case}");
        forms.stop();
    }
}

/// The example ingress (`chain: true`) and the same file with `chain: false`.
fn ingress_forms() -> (PathBuf, PathBuf) {
    let fused = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("gateways")
        .join("ingress.yaml");
    let text = std::fs::read_to_string(&fused).unwrap();
    assert!(text.contains("\nchain: true\n"), "{text}");
    let apart = scratch("gateways-ingress-apart").join("ingress-apart.yaml");
    std::fs::write(
        &apart,
        text.replace("\nchain: true\n", "\nchain: false\n")
            .replace("\nname: ingress\n", "\nname: ingress-apart\n"),
    )
    .unwrap();
    (apart, fused)
}

#[test]
fn run_hosts_the_example_ingress_with_all_four_plugins_and_the_demo_auth_service() {
    let (apart, fused) = ingress_forms();
    let forms = Forms::start(&apart, &fused, &dist_dir());
    for (run, chains) in [(&forms.apart, 0), (&forms.fused, 2)] {
        let out = run.output();
        for name in [
            "security-headers",
            "tenant",
            "admin-basic-auth",
            "ext-auth",
            "team",
            "api-version",
        ] {
            assert!(
                out.contains(name),
                "{name} missing from the printed chain:\n{out}"
            );
        }
        assert_eq!(out.matches("\n  chain ").count(), chains, "{out}");
    }
    let out = forms.fused.output();
    for line in [
        "  chain ingress-security-headers+",
        "    1. security-headers",
        "    3. admin-basic-auth",
        "  (ext-auth not fused with admin-basic-auth: different phase (AUTHN, AUTHZ))",
        "  chain ingress-ext-auth+",
        "    5. team",
        "  6. api-version",
    ] {
        assert!(out.contains(line), "{line:?} not printed:\n{out}");
    }
    let full = [
        ("x-tenant", "acme"),
        ("authorization", "Bearer demo"),
        ("x-team", "red"),
        ("x-api-version", "v1"),
    ];
    // Every prefix of the printed curl walk is denied by the next plugin, with the
    // security headers added even to the denials (response-headers runs first).
    let denials = [
        (401, "unknown tenant\n"),
        (401, "demo auth service"),
        (403, "team not allowed"),
        (400, "unsupported API version"),
    ];
    for (n, (status, body)) in denials.iter().enumerate() {
        let resp = forms.get(&full[..n]);
        assert_eq!(
            resp.status,
            *status,
            "with {:?}: {}",
            &full[..n],
            resp.text()
        );
        assert!(
            resp.text().starts_with(body),
            "with {:?}: {}",
            &full[..n],
            resp.text()
        );
        assert_eq!(
            resp.header("x-frame-options"),
            Some("DENY"),
            "{:?}",
            resp.headers
        );
    }
    // The demo auth service's denial reaches the client with its www-authenticate.
    let demo = forms.get(&full[..1]);
    assert_eq!(
        demo.header("www-authenticate"),
        Some("Bearer realm=\"demo\"")
    );
    // Everything present: the echo upstream answers, and sees the identity the demo
    // auth service returned (dispatch-auth's allowed_upstream_headers).
    let resp = forms.get(&full);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(resp.echoed().header_value("x-user-id"), Some("demo"));
    // A forged identity header is removed in both forms.
    let forged = forms.get(&[full.as_slice(), &[("x-user-id", "admin")]].concat());
    assert_eq!(forged.echoed().header_value("x-user-id"), Some("demo"));
    // basic-auth guards /admin only, asking for its realm.
    let admin = forms.send(&Request::get("/admin").header("x-tenant", "acme"));
    assert_eq!(admin.status, 401);
    assert_eq!(
        admin.header("www-authenticate"),
        Some("Basic realm=\"admin\"")
    );
    // The right admin credentials get past basic-auth, which then names the user
    // upstream; the demo auth service refuses them (they are no bearer token).
    let basic = forms.send(
        &Request::get("/admin")
            .header("x-tenant", "acme")
            .header("authorization", "Basic YWRtaW46Y2hhbmdlLW1l"),
    );
    assert_eq!(basic.status, 401, "{}", basic.text());
    assert!(
        basic.text().starts_with("demo auth service"),
        "{}",
        basic.text()
    );
    forms.stop();
}
