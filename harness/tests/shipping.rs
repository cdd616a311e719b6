//! How modules reach an Envoy outside `cargo xtask run`, with a real Envoy:
//! the Wasm filter configs `build-all` writes into an `api: EnvoyFilter`
//! gateway's EnvoyFilter pass `envoy --mode validate` (with local modules,
//! which makes Envoy load each module and configure it), its HTTP_FILTER
//! patches get those configs by ECDS and run in chain order, and Envoy fetches a
//! module over HTTP from a loopback server through `vm_config.code.remote`,
//! checked against the sha256 `build-all` wrote, and refuses one whose bytes
//! differ.

use harness::envoy::{bootstrap, dist_dir, envoy_bin, static_cluster, wasm_filter};
use harness::{scratch, Envoy, Reply, Request, Response, Server};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

fn xtask_bin() -> PathBuf {
    match std::env::var_os("XTASK_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => panic!("XTASK_BIN is not set: run the end-to-end tests with `cargo xtask test`"),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(hash) => Value::Object(
            hash.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::String(s) => json!(s),
        Yaml::Integer(i) => json!(i),
        Yaml::Boolean(b) => json!(b),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML {other:?}"),
    }
}

/// The sha256 `build-all` wrote beside `plugin`'s module.
fn written_sha256(plugin: &str) -> String {
    let sum = std::fs::read_to_string(dist_dir().join(format!("{plugin}.wasm.sha256"))).unwrap();
    sum.split_whitespace().next().unwrap().to_string()
}

/// Runs `build-all` on the example ingress as `api: EnvoyFilter` with `head`
/// (more gateway lines) and `url`, and returns the EnvoyFilter.
fn ingress_envoy_filter(
    name: &str,
    head: &str,
    url: &str,
    edit: &dyn Fn(String) -> String,
) -> Value {
    let dir = scratch(name);
    let text = std::fs::read_to_string(workspace().join("examples/gateways/ingress.yaml")).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("url:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = dir.join("ingress.yaml");
    std::fs::write(
        &file,
        edit(format!("api: EnvoyFilter\n{head}url: {url}\n{body}")),
    )
    .unwrap();
    let out = dir.join("out");
    let output = Command::new(xtask_bin())
        .arg("build-all")
        .arg("--gateways")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--schemas")
        .arg(dir.join("schemas"))
        .arg("--modules")
        .arg(dist_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("/ingress/: 1 EnvoyFilter (3 filters) from "),
        "{stdout}"
    );
    let text = std::fs::read_to_string(out.join("ingress").join("envoy-filter.yaml")).unwrap();
    to_json(&YamlLoader::load_from_str(&text).unwrap()[0])
}

/// The EnvoyFilter's EXTENSION_CONFIG values (name and typed_config), in order.
fn extension_configs(filter: &Value) -> Vec<Value> {
    filter["spec"]["configPatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["applyTo"] == "EXTENSION_CONFIG")
        .map(|p| p["patch"]["value"].clone())
        .collect()
}

/// `envoy --mode validate` of a bootstrap whose listener runs `filters` (each
/// an extension config embedded as an HTTP filter): Ok(log) or Err(log).
fn validate(dir: &Path, filters: &[Value]) -> Result<String, String> {
    let config = bootstrap(
        filters,
        "upstream",
        &[static_cluster("upstream", ([127, 0, 0, 1], 9).into())],
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("validate.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let output = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--disable-hot-restart",
            "--log-level",
            "info",
            "-c",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && log.contains("OK") {
        Ok(log)
    } else {
        Err(log)
    }
}

#[test]
fn envoy_filter_wasm_configs_pass_envoy_validate() {
    let dist = dist_dir().canonicalize().unwrap();
    // file://: Envoy loads each module and configures it with its config.
    let local = ingress_envoy_filter(
        "shipping-ef-file",
        "",
        &format!("file://{}", dist.display()),
        &|t| t,
    );
    let configs = extension_configs(&local);
    assert_eq!(configs.len(), 3);
    let code = &configs[0]["typed_config"]["config"]["vm_config"]["code"];
    assert_eq!(
        code["local"]["filename"],
        json!(dist.join("chain.wasm").display().to_string())
    );
    let dir = scratch("shipping-ef-validate");
    let log = validate(&dir.join("file"), &configs).unwrap_or_else(|log| panic!("{log}"));
    assert!(!log.contains("failed to load"), "{log}");
    // https:// (what Istio's agent fetches), with the modules' own sha256,
    // failure_policy from 1.25 on and fail_open before.
    let remote = ingress_envoy_filter("shipping-ef-https", "", "https://cdn.example.com/w", &|t| t);
    let configs = extension_configs(&remote);
    let source = &configs[0]["typed_config"]["config"]["vm_config"]["code"]["remote"];
    assert_eq!(source["sha256"], json!(written_sha256("chain")));
    validate(&dir.join("https"), &configs).unwrap_or_else(|log| panic!("{log}"));
    let old = ingress_envoy_filter(
        "shipping-ef-1-24",
        "istio: \"1.24\"\n",
        "https://cdn.example.com/w",
        &|t| t.replace("FAIL_RELOAD", "FAIL_CLOSE"),
    );
    let configs = extension_configs(&old);
    assert_eq!(
        configs[2]["typed_config"]["config"]["fail_open"],
        json!(true)
    );
    validate(&dir.join("1.24"), &configs).unwrap_or_else(|log| panic!("{log}"));

    // The check is real: a config the chain module refuses, and a remote
    // source without its digest, fail it.
    let mut bad = extension_configs(&local);
    bad[0]["typed_config"]["config"]["configuration"]["value"] = json!("{\"chain\": []}");
    let log = validate(&dir.join("bad-config"), &bad).unwrap_err();
    assert!(
        log.contains("Unable to create Wasm plugin istio-system.ingress-security-headers"),
        "{log}"
    );
    let mut bad = extension_configs(&remote);
    bad[1]["typed_config"]["config"]["vm_config"]["code"]["remote"]
        .as_object_mut()
        .unwrap()
        .remove("sha256");
    let log = validate(&dir.join("no-sha256"), &bad).unwrap_err();
    assert!(
        log.contains("RemoteDataSourceValidationError.Sha256"),
        "{log}"
    );
}

#[test]
fn envoy_filter_patches_get_their_configs_by_ecds_and_run_in_chain_order() {
    let dist = dist_dir().canonicalize().unwrap();
    let dir = scratch("shipping-ef-ecds");
    let file = dir.join("edge.yaml");
    std::fs::write(
        &file,
        format!(
            "name: edge\nnamespace: test\nselector: {{app: edge}}\napi: EnvoyFilter\nurl: file://{}\nplugins:\n\
             - {{plugin: header-authorization, name: team, phase: AUTHZ, config: {{header: x-team, values: [red], deny: {{status: 403}}}}}}\n\
             - {{plugin: header-authorization, name: tenant, phase: AUTHN, config: {{header: x-tenant, values: [acme], deny: {{status: 401}}}}}}\n\
             - {{plugin: response-headers, name: stamp, config: {{response_headers: [{{name: x-stamp, value: edge}}]}}}}\n",
            dist.display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let output = Command::new(xtask_bin())
        .arg("build-all")
        .arg("--gateways")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .arg("--schemas")
        .arg(dir.join("schemas"))
        .arg("--modules")
        .arg(dist_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("edge").join("envoy-filter.yaml")).unwrap();
    let filter = to_json(&YamlLoader::load_from_str(&text).unwrap()[0]);
    // Each EXTENSION_CONFIG becomes an ECDS resource in a file of its own.
    let mut sources = Map::new();
    for config in extension_configs(&filter) {
        let name = config["name"].as_str().unwrap().to_string();
        let path = dir.join(format!("ecds-{name}.json"));
        let resource = json!({"resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": name,
            "typed_config": config["typed_config"],
        }]});
        std::fs::write(&path, resource.to_string()).unwrap();
        sources.insert(name, json!({"path_config_source": {"path": path.display().to_string()}, "resource_api_version": "V3"}));
    }
    // The HTTP_FILTER patches applied as Istio applies them, to a listener that
    // has only the router; each filter as written, but for its config source:
    // there is no xDS server here, so ADS becomes the file above.
    let mut chain: Vec<Value> = Vec::new();
    for patch in filter["spec"]["configPatches"].as_array().unwrap() {
        if patch["applyTo"] != "HTTP_FILTER" {
            continue;
        }
        assert_eq!(patch["match"]["context"], "ANY");
        let mut value = patch["patch"]["value"].clone();
        let name = value["name"].as_str().unwrap().to_string();
        assert_eq!(value["config_discovery"]["config_source"]["ads"], json!({}));
        value["config_discovery"]["config_source"] = sources[&name].clone();
        match patch["patch"]["operation"].as_str().unwrap() {
            "INSERT_FIRST" => chain.insert(0, value),
            // Before the router, which `bootstrap` appends.
            "INSERT_BEFORE" => chain.push(value),
            other => panic!("unexpected {other}"),
        }
    }
    let names: Vec<&str> = chain.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["test.edge-tenant", "test.edge-team", "test.edge-stamp"]
    );
    let echo = Server::echo();
    let config = bootstrap(&chain, "echo", &[static_cluster("echo", echo.addr())]);
    let envoy = Envoy::launch(&dir.join("envoy"), &config, 1, Some(echo))
        .unwrap_or_else(|log| panic!("{log}"));
    // tenant (AUTHN) decides first, then team (AUTHZ); stamp marks every
    // answer that passes through it on the way back.
    let tenant = ("x-tenant", "acme");
    let team = ("x-team", "red");
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[], 401),
        (&[team], 401),
        (&[tenant], 403),
        (&[tenant, team], 200),
    ];
    for (headers, status) in cases {
        let response = envoy.get("/", headers);
        assert_eq!(response.status, status, "{headers:?}");
    }
    assert_eq!(
        envoy.get("/", &[tenant, team]).header("x-stamp"),
        Some("edge")
    );
    assert_eq!(envoy.echo().count(), 2);
}

/// A header-authorization filter whose module Envoy fetches from `server`
/// (cluster `wasm_server`) at `path`, checked against `sha256`.
fn remote_filter(server: &Server, path: &str, sha256: &str, policy: &str) -> (Value, Value) {
    let mut filter = wasm_filter(
        "remote",
        "header-authorization",
        r#"{"header": "x-team", "values": ["red"]}"#,
    );
    let config = &mut filter["typed_config"]["config"];
    config["vm_config"]["code"] = json!({"remote": {
        "http_uri": {"uri": format!("http://{}{path}", server.addr()), "cluster": "wasm_server", "timeout": "5s"},
        "sha256": sha256,
    }});
    config["failure_policy"] = json!(policy);
    (filter, static_cluster("wasm_server", server.addr()))
}

fn start(dir: &Path, filter: Value, cluster: Value) -> Envoy {
    let echo = Server::echo();
    let config = bootstrap(
        &[filter],
        "echo",
        &[static_cluster("echo", echo.addr()), cluster],
    );
    Envoy::launch(dir, &config, 1, Some(echo)).unwrap_or_else(|log| panic!("{log}"))
}

#[test]
fn envoy_fetches_a_module_over_http_and_refuses_one_whose_sha256_differs() {
    let module = std::fs::read(dist_dir().join("header-authorization.wasm")).unwrap();
    let sha256 = written_sha256("header-authorization");
    // The same length, one byte changed: what a truncated-then-padded or
    // tampered download looks like.
    let mut tampered = module.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let server = Server::start(move |req: &Request| {
        let body = match req.path.as_str() {
            "/header-authorization.wasm" => module.clone(),
            "/tampered.wasm" => tampered.clone(),
            _ => return Reply::status(404),
        };
        Reply::Respond(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/wasm".into())],
            body,
        })
    });
    let dir = scratch("shipping-remote");

    // The right bytes: fetched once, and the plugin runs.
    let (filter, cluster) = remote_filter(
        &server,
        "/header-authorization.wasm",
        &sha256,
        "FAIL_CLOSED",
    );
    let envoy = start(&dir.join("good"), filter, cluster);
    assert_eq!(envoy.get("/", &[]).status, 403);
    assert_eq!(envoy.get("/", &[("x-team", "red")]).status, 200);
    assert_eq!(server.count(), 1);
    drop(envoy);

    // Bytes that do not match: Envoy fetches them twice (its remote source
    // retries once by default), gives up, and the filter never loads. The
    // listener still comes up; under FAIL_CLOSED every request is refused with
    // an empty 503 before reaching the upstream, with or without the header.
    server.clear();
    let (filter, cluster) = remote_filter(&server, "/tampered.wasm", &sha256, "FAIL_CLOSED");
    let envoy = start(&dir.join("tampered-closed"), filter, cluster);
    for headers in [&[][..], &[("x-team", "red")][..]] {
        let response = envoy.get("/", headers);
        assert_eq!((response.status, response.body.len()), (503, 0));
    }
    assert_eq!(envoy.echo().count(), 0);
    assert_eq!(server.count(), 2);
    let log = envoy.log();
    assert!(
        log.contains("Retry limit exceeded for fetching data from remote data source"),
        "{log}"
    );
    assert!(
        log.contains("Plugin configured to fail closed failed to load"),
        "{log}"
    );
    drop(envoy);

    // Under FAIL_OPEN the same bad module means no plugin at all: every
    // request passes unchecked. (Why auth plugins want FAIL_CLOSE or RELOAD.)
    let (filter, cluster) = remote_filter(&server, "/tampered.wasm", &sha256, "FAIL_OPEN");
    let envoy = start(&dir.join("tampered-open"), filter, cluster);
    assert_eq!(envoy.get("/", &[]).status, 200);
    assert!(envoy
        .wait_log("failed to load", Duration::from_secs(5))
        .is_some());
}
