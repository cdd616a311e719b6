//! `build-all`'s images pushed by `cargo xtask push` to a real registry (Debian's
//! `docker-registry`, the CNCF distribution registry, on a loopback port) and read
//! back by an independent client, skopeo: every image the example gateways name,
//! without and with htpasswd login, again after a push cut half-way, and the
//! one-line refusals (wrong password, no credentials, registry down, bad name).
//! `cargo xtask test` runs it once, in a phase of its own, with REGISTRY_BIN and
//! SKOPEO_BIN set.

use harness::envoy::dist_dir;
use harness::scratch;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// The registry process and running commands with a time limit.
#[path = "registry/parts.rs"]
mod parts;
use parts::{env_path, free_port, hex, output_within_a_minute, Registry};

// A TCP proxy that cuts a push half-way.
#[path = "registry/proxy.rs"]
mod proxy;
// A token server for the registry's bearer-token authentication.
#[path = "registry/token.rs"]
mod token;
use proxy::CuttingProxy;
use token::TokenServer;

const USER: &str = "ci";
const PASSWORD: &str = "pw-Zq81!never-printed";

/// The example gateways with their url pointed at `base` (`127.0.0.1:port/...`),
/// so the images pushed are every one build-all makes for them.
fn gateways(dir: &Path, base: &str) -> PathBuf {
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
        .join("gateways");
    for name in ["ingress.yaml", "internal.yaml"] {
        let text = std::fs::read_to_string(examples.join(name)).unwrap();
        let text = text.replace(
            "url: oci://registry.example.com/mesh-plugins",
            &format!("url: oci://{base}"),
        );
        assert!(text.contains(&format!("url: oci://{base}\n")), "{name}");
        std::fs::write(gateways.join(name), text).unwrap();
    }
    gateways
}

/// xtask with `args`, its credentials only what `env` gives (an empty HOME, no
/// DOCKER_CONFIG, no credential variables unless set here).
fn xtask(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env_path("XTASK_BIN"));
    cmd.args(args)
        .env("HOME", &home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("MESH_PLUGINS_REGISTRY_USERNAME")
        .env_remove("MESH_PLUGINS_REGISTRY_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output_within_a_minute(cmd);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// build-all for the gateways in `dir`: manifests to `dir/manifests`, images to
/// the layout beside the modules. Returns the sha256 each WasmPlugin pins, by url.
fn build_all(dir: &Path, gateways: &Path) -> BTreeMap<String, String> {
    let out = dir.join("manifests");
    let dist = dist_dir().display().to_string();
    let (ok, stdout, stderr) = xtask(
        dir,
        &[
            "build-all",
            "--gateways",
            &gateways.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--schemas",
            &dir.join("schemas").display().to_string(),
            "--modules",
            &dist,
        ],
        &[],
    );
    assert!(ok, "build-all failed:\n{stdout}\n{stderr}");
    let mut pinned = BTreeMap::new();
    for gateway in std::fs::read_dir(&out).unwrap().flatten() {
        for file in std::fs::read_dir(gateway.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(file.path()).unwrap();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("  {name}: ")))
                    .map(|v| v.trim_matches('"').to_string())
            };
            if let (Some(url), Some(sha)) = (field("url"), field("sha256")) {
                pinned.insert(url, sha);
            }
        }
    }
    assert!(!pinned.is_empty(), "no WasmPlugin in {}", out.display());
    pinned
}

/// push for the gateways in `gateways`.
fn push(dir: &Path, gateways: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let dist = dist_dir().display().to_string();
    xtask(
        dir,
        &[
            "push",
            "--gateways",
            &gateways.display().to_string(),
            "--modules",
            &dist,
        ],
        env,
    )
}

/// Per pushed reference (`oci://...:tag`): its digest and (blobs sent, already there).
fn pushed(stdout: &str) -> BTreeMap<String, (String, usize, usize)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (reference, rest) = line.split_once('@')?;
            let (digest, counts) = rest.split_once("  (")?;
            let mut numbers = counts
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|n| n.parse::<usize>().unwrap());
            Some((
                reference.to_string(),
                (digest.to_string(), numbers.next()?, numbers.next()?),
            ))
        })
        .collect()
}

fn skopeo(args: &[&str]) -> Output {
    let mut cmd = Command::new(env_path("SKOPEO_BIN"));
    cmd.arg("--insecure-policy").args(args);
    output_within_a_minute(cmd)
}

/// Reads `reference` (`oci://host:port/repo:tag`) back with skopeo and checks it
/// is what Istio pulls: the manifest's digest is `sha256`, its media types and
/// annotation the compat form's, and its one layer a tar.gz holding exactly
/// `plugin.wasm`, byte-identical to `module`.
fn check_with_skopeo(dir: &Path, reference: &str, sha256: &str, module: &Path, creds: &[&str]) {
    let docker = format!("docker://{}", reference.strip_prefix("oci://").unwrap());
    let copy = dir.join(format!("copy-{}", hex(reference.as_bytes())));
    let _ = std::fs::remove_dir_all(&copy);
    let mut args = vec!["copy", "--quiet", "--src-tls-verify=false"];
    args.extend_from_slice(creds);
    let target = format!("dir:{}", copy.display());
    args.extend_from_slice(&[docker.as_str(), target.as_str()]);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo copy {docker}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest_bytes = std::fs::read(copy.join("manifest.json")).unwrap();
    assert_eq!(hex(&manifest_bytes), sha256, "{reference}: manifest digest");
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({"module.wasm.image/variant": "compat"})
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{reference}: {manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_hex = layers[0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let layer = copy.join(layer_hex);
    assert_eq!(hex(&std::fs::read(&layer).unwrap()), layer_hex);
    // GNU tar, another independent reader, lists and extracts the layer.
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&layer)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout), "plugin.wasm\n");
    let wasm = Command::new("tar")
        .arg("-xzOf")
        .arg(&layer)
        .arg("plugin.wasm")
        .output()
        .unwrap();
    assert!(wasm.status.success());
    assert!(
        wasm.stdout == std::fs::read(module).unwrap(),
        "{reference}: plugin.wasm differs from {}",
        module.display()
    );
}

/// The module an image reference holds: `.../<plugin>:<version>` -> dist/<plugin>.wasm.
fn module_of(reference: &str) -> PathBuf {
    let last = reference.rsplit('/').next().unwrap();
    let plugin = last.split(':').next().unwrap();
    dist_dir().join(format!("{plugin}.wasm"))
}

#[test]
fn push_sends_every_image_the_gateways_name_and_skopeo_reads_back_what_istio_pulls() {
    let dir = scratch("registry-push");
    let registry = Registry::start(&dir.join("registry"), false);
    let gateways = gateways(&dir, &format!("{}/mesh-plugins", registry.addr));
    let pinned = build_all(&dir, &gateways);

    let (ok, stdout, stderr) = push(&dir, &gateways, &[]);
    assert!(ok, "{stdout}\n{stderr}");
    let first = pushed(&stdout);
    // Every oci:// url the manifests name was pushed, with the digest they pin.
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        pinned.keys().collect::<Vec<_>>(),
        "{stdout}"
    );
    assert!(first.keys().any(|r| r.contains("/chain:")), "{stdout}");
    for (reference, (digest, sent, _)) in &first {
        assert_eq!(digest, &format!("sha256:{}", pinned[reference]));
        assert_eq!(*sent, 2, "{reference}: config and layer sent");
        check_with_skopeo(
            &dir,
            reference,
            &pinned[reference],
            &module_of(reference),
            &["--src-no-creds"],
        );
        // skopeo inspect, as the README shows it, gives the same digest.
        let docker = format!("docker://{}", reference.strip_prefix("oci://").unwrap());
        let out = skopeo(&["inspect", "--tls-verify=false", "--no-creds", &docker]);
        let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Digest"], digest.as_str());
        // The local layout holds the very same manifest, readable by skopeo.
        let plugin = module_of(reference);
        let plugin = plugin.file_stem().unwrap().to_string_lossy();
        let tag = reference.rsplit(':').next().unwrap();
        let local = format!("oci:{}:{plugin}:{tag}", dist_dir().join("oci").display());
        let out = skopeo(&["inspect", "--raw", &local]);
        assert!(
            out.status.success(),
            "{local}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(hex(&out.stdout), pinned[reference], "{local}");
    }
    // Again: nothing is sent twice.
    let (ok, stdout, stderr) = push(&dir, &gateways, &[]);
    assert!(ok, "{stdout}\n{stderr}");
    for (reference, (digest, sent, present)) in pushed(&stdout) {
        assert_eq!(digest, first[&reference].0);
        assert_eq!((sent, present), (0, 2), "{reference}");
    }
}

#[test]
fn push_logs_in_with_htpasswd_and_refuses_a_wrong_password_in_one_line() {
    let dir = scratch("registry-auth");
    let registry = Registry::start(&dir.join("registry"), true);
    let gateways = gateways(&dir, &format!("{}/mesh-plugins", registry.addr));
    let pinned = build_all(&dir, &gateways);
    let one_line_error = |stdout: &str, stderr: &str, expected: &str| {
        assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: push oci://"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };

    let (ok, stdout, stderr) = push(&dir, &gateways, &[]);
    assert!(!ok);
    one_line_error(
        &stdout,
        &stderr,
        &format!(
            "{} refused the login without credentials: set MESH_PLUGINS_REGISTRY_USERNAME",
            registry.addr
        ),
    );
    let (ok, stdout, stderr) = push(
        &dir,
        &gateways,
        &[
            ("MESH_PLUGINS_REGISTRY_USERNAME", USER),
            ("MESH_PLUGINS_REGISTRY_PASSWORD", "not-the-password"),
        ],
    );
    assert!(!ok);
    one_line_error(
        &stdout,
        &stderr,
        &format!("{} refused the login for user 'ci' (credentials from MESH_PLUGINS_REGISTRY_USERNAME/MESH_PLUGINS_REGISTRY_PASSWORD)", registry.addr),
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    let creds = format!("--src-creds={USER}:{PASSWORD}");
    let (reference, _) = pinned.iter().next().unwrap();
    let docker = format!("docker://{}", reference.strip_prefix("oci://").unwrap());
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("--creds={USER}:{PASSWORD}"),
        &docker,
    ]);
    assert!(
        !out.status.success(),
        "a refused push left {reference} behind"
    );

    // The Docker config's auths entry, as `docker login` writes it.
    use base64::Engine as _;
    let docker_config = dir.join("docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker_config.join("config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}",
            registry.addr
        ),
    )
    .unwrap();
    let docker_config = docker_config.display().to_string();
    let (ok, stdout, stderr) = push(&dir, &gateways, &[("DOCKER_CONFIG", &docker_config)]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    let pushed = pushed(&stdout);
    assert_eq!(
        pushed.keys().collect::<Vec<_>>(),
        pinned.keys().collect::<Vec<_>>()
    );
    for reference in pushed.keys() {
        check_with_skopeo(
            &dir,
            reference,
            &pinned[reference],
            &module_of(reference),
            &[&creds],
        );
    }
    // And from the variables, which come first: nothing left to send.
    let (ok, stdout, stderr) = push(
        &dir,
        &gateways,
        &[
            ("DOCKER_CONFIG", "/nonexistent"),
            ("MESH_PLUGINS_REGISTRY_USERNAME", USER),
            ("MESH_PLUGINS_REGISTRY_PASSWORD", PASSWORD),
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(pushed_all_present(&stdout), "{stdout}");
}

fn pushed_all_present(stdout: &str) -> bool {
    let p = pushed(stdout);
    !p.is_empty()
        && p.values()
            .all(|(_, sent, present)| (*sent, *present) == (0, 2))
}

#[test]
fn an_unreachable_registry_or_a_bad_repository_name_is_a_one_line_error() {
    let dir = scratch("registry-refusals");
    // Nothing listens there.
    let down = format!("127.0.0.1:{}", free_port());
    let gateways = gateways(&dir, &format!("{down}/mesh-plugins"));
    build_all(&dir, &gateways);
    let started = Instant::now();
    let (ok, _, stderr) = push(&dir, &gateways, &[]);
    assert!(!ok);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("registry {down} unreachable (")),
        "{stderr}"
    );
    // Repository names are lowercase: refused before anything is sent.
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let gateways = self::gateways(&bad, &format!("{down}/Mesh-Plugins"));
    let (ok, _, stderr) = push(&bad, &gateways, &[]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("oci://{down}/Mesh-Plugins/"))
            && stderr.contains("not an image reference"),
        "{stderr}"
    );
}

#[test]
fn a_push_cut_half_way_is_completed_by_pushing_again() {
    let dir = scratch("registry-cut");
    let registry = Registry::start(&dir.join("registry"), false);
    let probe = gateways(&dir, "127.0.0.1:1/mesh-plugins");
    let pinned = build_all(&dir, &probe);
    // Cut once about half of all the blob bytes have gone through.
    let total: u64 = pinned
        .keys()
        .map(|r| std::fs::metadata(module_of(r)).unwrap().len())
        .sum();
    let proxy = CuttingProxy::start(registry.addr, (total / 4) as usize);
    let cut_dir = dir.join("cut");
    std::fs::create_dir_all(&cut_dir).unwrap();
    let gateways = self::gateways(&cut_dir, &format!("{}/mesh-plugins", proxy.addr));
    let pinned = build_all(&cut_dir, &gateways);
    let (ok, stdout, stderr) = push(&cut_dir, &gateways, &[]);
    assert!(!ok, "the push went through uncut:\n{stdout}");
    assert!(proxy.cuts.load(Ordering::SeqCst) > 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: push oci://"), "{stderr}");
    let done_before = pushed(&stdout).len();
    eprintln!(
        "cut push: {} image(s) done, then {}",
        done_before,
        stderr.trim()
    );
    assert!(done_before < pinned.len(), "{stdout}");

    proxy.cut.store(false, Ordering::SeqCst);
    let (ok, stdout, stderr) = push(&cut_dir, &gateways, &[]);
    assert!(ok, "{stdout}\n{stderr}");
    let again = pushed(&stdout);
    eprint!("pushed again:\n{stdout}");
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        pinned.keys().collect::<Vec<_>>()
    );
    // What the first push finished is not sent again.
    let already: usize = again.values().map(|(_, _, present)| present).sum();
    assert!(already > 2 * done_before, "{stdout}");
    for reference in again.keys() {
        check_with_skopeo(
            &cut_dir,
            reference,
            &pinned[reference],
            &module_of(reference),
            &["--src-no-creds"],
        );
    }
}

#[test]
fn push_logs_in_through_the_registrys_token_server() {
    let dir = scratch("registry-token");
    let tokens = TokenServer::start(&dir.join("token"), USER, PASSWORD);
    let registry = Registry::start_with(&dir.join("registry"), &tokens.registry_auth());
    let gateways = gateways(&dir, &format!("{}/mesh-plugins", registry.addr));
    let pinned = build_all(&dir, &gateways);

    let (ok, stdout, stderr) = push(
        &dir,
        &gateways,
        &[
            ("MESH_PLUGINS_REGISTRY_USERNAME", USER),
            ("MESH_PLUGINS_REGISTRY_PASSWORD", "not-the-password"),
        ],
    );
    assert!(!ok, "{stdout}");
    assert!(tokens.refused.load(Ordering::SeqCst) > 0);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} refused the login for user 'ci'",
            registry.addr
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    let (ok, stdout, stderr) = push(
        &dir,
        &gateways,
        &[
            ("MESH_PLUGINS_REGISTRY_USERNAME", USER),
            ("MESH_PLUGINS_REGISTRY_PASSWORD", PASSWORD),
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");
    assert!(tokens.issued.load(Ordering::SeqCst) > 0);
    let pushed = pushed(&stdout);
    assert_eq!(
        pushed.keys().collect::<Vec<_>>(),
        pinned.keys().collect::<Vec<_>>()
    );
    let creds = format!("--src-creds={USER}:{PASSWORD}");
    for reference in pushed.keys() {
        check_with_skopeo(
            &dir,
            reference,
            &pinned[reference],
            &module_of(reference),
            &[&creds],
        );
    }
}
