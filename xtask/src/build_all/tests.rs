//! `build-all` with prebuilt (fake) modules, so no wasm build runs: it writes a
//! gateway's manifests whole, a chain in place of its instances, and nothing at
//! all from a bad gateway file or a missing module.

use crate::gateway::tests::{known, BAD, BAD_FILES};
use crate::manifests::tests::{names, read_dir};
use harness::scratch;
use std::path::{Path, PathBuf};

/// `build-all` with prebuilt (fake) modules, so no wasm build runs.
fn build_all(gateways: &Path, out: &Path, modules: &Path) -> Result<(), String> {
    let args: Vec<String> = [
        "--gateways",
        &gateways.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--modules",
        &modules.display().to_string(),
        "--schemas",
        &out.with_file_name("schemas").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    super::run_command(&args)
}

fn fake_modules(dir: &Path) -> PathBuf {
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(
        modules.join("header-authorization.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .unwrap();
    modules
}

const EDGE: &str =
    "name: edge\nnamespace: edge\nselector: {app: edge}\nurl: file:///opt/f\nplugins:\n";

#[test]
fn build_all_writes_manifests_and_replaces_stale_ones() {
    let dir = scratch("xtask-build-all");
    let modules = fake_modules(&dir);
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    let edge = gateways.join("edge.yaml");
    std::fs::write(
        &edge,
        format!("{EDGE}  - {{plugin: header-authorization, name: old}}\n"),
    )
    .unwrap();
    let out = dir.join("out");
    build_all(&gateways, &out, &modules).unwrap();
    assert_eq!(
        read_dir(&out.join("edge")).keys().collect::<Vec<_>>(),
        ["kustomization.yaml", "old.yaml"]
    );
    let spec =
        crate::yaml::parse(&std::fs::read_to_string(out.join("edge").join("old.yaml")).unwrap())
            .unwrap()["spec"]
            .clone();
    // sha256 of the module bytes "\0asm\x01\0\0\0".
    assert_eq!(
        spec["sha256"],
        "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476"
    );
    std::fs::write(
        &edge,
        format!("{EDGE}  - {{plugin: header-authorization, name: new}}\n"),
    )
    .unwrap();
    build_all(&gateways, &out, &modules).unwrap();
    assert_eq!(
        read_dir(&out.join("edge")).keys().collect::<Vec<_>>(),
        ["kustomization.yaml", "new.yaml"]
    );
    // Nothing is left behind beside the manifests.
    assert_eq!(names(&out), ["edge"]);
    // The schemas, as committed in schemas/.
    let schemas = crate::schemas::files();
    assert!(schemas.iter().any(|(name, _)| name == "gateway.json"));
    for (name, text) in schemas {
        assert_eq!(
            std::fs::read_to_string(dir.join("schemas").join(name)).unwrap(),
            text
        );
    }
}

#[test]
fn a_bad_gateway_file_writes_nothing() {
    let dir = scratch("xtask-bad-build-all");
    let modules = fake_modules(&dir);
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    let out = dir.join("out");
    // Manifests from an earlier good build, which must survive untouched.
    let good = format!("{EDGE}  - {{plugin: header-authorization}}\n");
    std::fs::write(gateways.join("edge.yaml"), &good).unwrap();
    std::fs::write(
        gateways.join("gw.yaml"),
        good.replace("name: edge", "name: gw"),
    )
    .unwrap();
    build_all(&gateways, &out, &modules).unwrap();
    let before = (read_dir(&out.join("edge")), read_dir(&out.join("gw")));

    let mut cases: Vec<(&str, String, String)> = BAD
        .iter()
        .map(|(case, extra, msg)| {
            let text = good.replace("name: edge", "name: gw").replace(
                "  - {plugin: header-authorization}\n",
                &format!("  - {{plugin: header-authorization}}\n{extra}"),
            );
            (*case, text, msg.replace("{known}", &known()))
        })
        .collect();
    cases.extend(
        BAD_FILES
            .iter()
            .map(|(case, text, msg)| (*case, text.to_string(), msg.to_string())),
    );
    for (case, text, message) in cases {
        std::fs::write(gateways.join("gw.yaml"), &text).unwrap();
        let err = build_all(&gateways, &out, &modules).unwrap_err();
        let file = crate::gateway::display(&gateways.join("gw.yaml"));
        assert_eq!(err, format!("{file}: {message}"), "{case}");
        // Neither the bad gateway's manifests nor the good one's were touched.
        assert_eq!(
            (read_dir(&out.join("edge")), read_dir(&out.join("gw"))),
            before,
            "{case}"
        );
        assert_eq!(names(&out), ["edge", "gw"], "{case}: stray files");
    }
}

#[test]
fn a_missing_or_invalid_module_stops_before_writing() {
    let dir = scratch("xtask-bad-module");
    let modules = fake_modules(&dir);
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    std::fs::write(
        gateways.join("edge.yaml"),
        format!("{EDGE}  - {{plugin: header-authorization}}\n"),
    )
    .unwrap();
    let out = dir.join("out");
    std::fs::write(modules.join("header-authorization.wasm"), b"not wasm").unwrap();
    let err = build_all(&gateways, &out, &modules).unwrap_err();
    assert!(
        err.ends_with("header-authorization.wasm: not a wasm module"),
        "{err}"
    );
    std::fs::remove_file(modules.join("header-authorization.wasm")).unwrap();
    let err = build_all(&gateways, &out, &modules).unwrap_err();
    assert!(
        err.contains("header-authorization.wasm: No such file"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn build_all_writes_a_chain_in_place_of_its_instances() {
    let dir = scratch("xtask-build-all-chain");
    let modules = fake_modules(&dir);
    std::fs::write(modules.join("chain.wasm"), b"\0asm\x01\0\0\0chain").unwrap();
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    let edge = gateways.join("edge.yaml");
    let plugins = "  - {plugin: header-authorization, name: a, priority: 2}\n  - {plugin: header-authorization, name: b, priority: 1}\n";
    std::fs::write(&edge, format!("{EDGE}{plugins}")).unwrap();
    let out = dir.join("out");
    build_all(&gateways, &out, &modules).unwrap();
    assert_eq!(
        read_dir(&out.join("edge")).keys().collect::<Vec<_>>(),
        ["a.yaml", "b.yaml", "kustomization.yaml"]
    );
    // Fusion on: one WasmPlugin replaces both, and nothing else is left.
    std::fs::write(
        &edge,
        format!(
            "{}{plugins}",
            EDGE.replace("plugins:\n", "chain: true\nplugins:\n")
        ),
    )
    .unwrap();
    build_all(&gateways, &out, &modules).unwrap();
    let written = read_dir(&out.join("edge"));
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        ["a.yaml", "kustomization.yaml"]
    );
    let spec = crate::yaml::parse(std::str::from_utf8(&written["a.yaml"]).unwrap()).unwrap()
        ["spec"]
        .clone();
    assert_eq!(spec["url"], "file:///opt/f/chain.wasm");
    // sha256 of the fake chain module's bytes.
    assert_eq!(
        spec["sha256"],
        crate::build::hex(&<sha2::Sha256 as sha2::Digest>::digest(
            b"\0asm\x01\0\0\0chain"
        ))
    );
    // Without the chain module, nothing is written.
    std::fs::remove_file(modules.join("chain.wasm")).unwrap();
    std::fs::write(
        &edge,
        format!(
            "{}{plugins}",
            EDGE.replace("plugins:\n", "chain: true\nplugins:\n")
        )
        .replace("name: a,", "name: c,"),
    )
    .unwrap();
    let err = build_all(&gateways, &out, &modules).unwrap_err();
    assert!(err.contains("chain.wasm: No such file"), "{err}");
    assert_eq!(read_dir(&out.join("edge")), written);
}

#[test]
fn build_all_writes_each_module_as_an_image_and_pins_oci_urls_to_its_digest() {
    let dir = scratch("xtask-build-all-oci");
    let modules = fake_modules(&dir);
    let gateways = dir.join("gateways");
    std::fs::create_dir_all(&gateways).unwrap();
    std::fs::write(
        gateways.join("edge.yaml"),
        format!(
            "{}  - {{plugin: header-authorization, name: team}}\n",
            EDGE.replace("file:///opt/f", "oci://registry.example.com/p")
        ),
    )
    .unwrap();
    let out = dir.join("out");
    build_all(&gateways, &out, &modules).unwrap();
    let image = crate::oci::Image::new(b"\0asm\x01\0\0\0").unwrap();
    let layout = crate::oci::layout_dir(&modules);
    assert_eq!(
        crate::oci::read_image(&layout, &crate::oci::ref_name("header-authorization")).unwrap(),
        image
    );
    let spec =
        crate::yaml::parse(&std::fs::read_to_string(out.join("edge").join("team.yaml")).unwrap())
            .unwrap()["spec"]
            .clone();
    // Istio compares an OCI module's sha256 with the image manifest's digest.
    assert_eq!(spec["sha256"], image.sha256());
    assert_ne!(
        spec["sha256"], "93a44bbb96c751218e4c00d479e4c14358122a389acca16205b1e4d0dc5f9476",
        "the module file's own sha256"
    );
}
