//! The image's bytes (what Istio's agent reads from it, and that they never vary)
//! and the layout's bookkeeping (replace, keep, collect, refuse a damaged blob).

use super::*;
use flate2::read::GzDecoder;
use harness::scratch;
use serde_json::Value;
use std::io::Read;

const MODULE: &[u8] = b"\0asm\x01\0\0\0";

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn an_image_is_one_gzip_tar_layer_holding_exactly_plugin_wasm() {
    let wasm: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let image = Image::new(&wasm).unwrap();
    let manifest = json(&image.manifest);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({VARIANT.0: VARIANT.1})
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE);
    assert_eq!(layers[0]["digest"], digest_of(&image.layer));
    assert_eq!(layers[0]["size"], image.layer.len());
    assert_eq!(manifest["config"]["digest"], digest_of(&image.config));

    // gzip header: no name flag, mtime 0, OS "unknown".
    assert_eq!(&image.layer[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&image.layer[4..8], &[0, 0, 0, 0]);
    let mut tar_bytes = Vec::new();
    GzDecoder::new(&image.layer[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entries: Vec<(String, u32, u64, u64, u64, Vec<u8>)> = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.push((
            entry.path().unwrap().display().to_string(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.mtime().unwrap(),
            data,
        ));
    }
    assert_eq!(
        entries,
        [("plugin.wasm".to_string(), 0o644, 0, 0, 0, wasm.clone())]
    );
    let config = json(&image.config);
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(
        config["rootfs"],
        serde_json::json!({"type": "layers", "diff_ids": [digest_of(&tar_bytes)]})
    );
}

#[test]
fn the_same_module_always_gives_the_same_image() {
    let a = Image::new(MODULE).unwrap();
    assert_eq!(a, Image::new(MODULE).unwrap());
    assert_ne!(
        a.digest(),
        Image::new(b"\0asm\x01\0\0\0\0").unwrap().digest()
    );
    // Pinned: a change here changes every published digest (a crate update that
    // reorders JSON fields or compresses differently), so it must be on purpose.
    assert_eq!(
        a.digest(),
        "sha256:38b74a6563fb7eca0844d1c11ac28623f7ff928f1557e0e1d7f780a367677058"
    );
    assert_eq!(a.sha256(), a.digest()["sha256:".len()..]);
}

#[test]
fn the_layout_replaces_keeps_and_collects_images_by_name() {
    let dir = scratch("xtask-oci-layout");
    let one = Image::new(MODULE).unwrap();
    let two = Image::new(b"\0asm\x01\0\0\0two").unwrap();
    write_layout(&dir, &[("a:1".into(), &one), ("b:1".into(), &two)]).unwrap();
    assert_eq!(
        json(&std::fs::read(dir.join("oci-layout")).unwrap()),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    assert_eq!(read_image(&dir, "a:1").unwrap(), one);
    assert_eq!(read_image(&dir, "b:1").unwrap(), two);
    let index = json(&std::fs::read(dir.join("index.json")).unwrap());
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"][REF_NAME].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a:1", "b:1"]);
    assert_eq!(index["manifests"][0]["digest"], one.digest());
    assert_eq!(index["manifests"][0]["mediaType"], MANIFEST_MEDIA_TYPE);

    // b:1 rebuilt from other bytes: a:1 stays, b:1's old blobs go.
    let three = Image::new(b"\0asm\x01\0\0\0three").unwrap();
    write_layout(&dir, &[("b:1".into(), &three)]).unwrap();
    assert_eq!(read_image(&dir, "a:1").unwrap(), one);
    assert_eq!(read_image(&dir, "b:1").unwrap(), three);
    assert!(!blob_path(&dir, &two.digest()).exists());
    assert!(!blob_path(&dir, &two.blobs()[1].0).exists());
    let blobs = std::fs::read_dir(dir.join("blobs").join("sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 6, "two images of three blobs each, nothing else");
    // Writing the same again changes nothing.
    let before = std::fs::read(dir.join("index.json")).unwrap();
    write_layout(&dir, &[("b:1".into(), &three)]).unwrap();
    assert_eq!(std::fs::read(dir.join("index.json")).unwrap(), before);

    assert_eq!(
        read_image(&dir, "c:1").unwrap_err(),
        format!("{}: no image named c:1", dir.display())
    );
    // A damaged blob is refused, not pushed.
    let layer = blob_path(&dir, &one.blobs()[1].0);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&layer, bytes).unwrap();
    let err = read_image(&dir, "a:1").unwrap_err();
    assert!(err.contains("does not match its digest or size"), "{err}");
}
