//! The modules as OCI images in the form Istio's agent pulls (the "compat" variant
//! of the solo-io wasm image spec: one `tar+gzip` layer holding exactly
//! `plugin.wasm`, the manifest annotated `module.wasm.image/variant=compat`),
//! built byte for byte the same on any machine, and the OCI image layout
//! (`target/dist/oci/`) that `build-all` writes and `push` reads.

use crate::util::{version, Result};
use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os,
    RootFsBuilder,
};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The layer media type Istio's compat branch accepts (`extractOCIStandardImage`).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// The manifest annotation spec-compat.md requires with an OCI layer.
pub const VARIANT: (&str, &str) = ("module.wasm.image/variant", "compat");
/// The file the layer holds: Istio reads the first entry with this base name.
pub const WASM_FILE: &str = "plugin.wasm";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One module's image: its manifest, config and layer, as stored and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
}

impl Image {
    /// The image of a wasm module. Deterministic: the tar entry has fixed metadata
    /// and the gzip stream no name or time, so the digests depend on the module
    /// bytes (and the compressor, pinned by Cargo.lock) only.
    pub fn new(wasm: &[u8]) -> Result<Image> {
        let tar = tar_of(wasm)?;
        let layer = gzip(&tar)?;
        let config = ImageConfigurationBuilder::default()
            .architecture(Arch::Wasm)
            .os(Os::Other("wasip1".into()))
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![digest_of(&tar)])
                    .build()
                    .map_err(|e| format!("image config: {e}"))?,
            )
            .build()
            .map_err(|e| format!("image config: {e}"))?;
        let config = serde_json::to_vec(&config).map_err(|e| format!("image config: {e}"))?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(MediaType::ImageConfig, &config, None)?)
            .layers(vec![descriptor(MediaType::ImageLayerGzip, &layer, None)?])
            .annotations(HashMap::from([(VARIANT.0.into(), VARIANT.1.into())]))
            .build()
            .map_err(|e| format!("image manifest: {e}"))?;
        let manifest = serde_json::to_vec(&manifest).map_err(|e| format!("image manifest: {e}"))?;
        Ok(Image {
            manifest,
            config,
            layer,
        })
    }

    /// `sha256:<hex>` of the manifest: the image's digest, which registries
    /// answer with and Istio compares with a WasmPlugin's `sha256`.
    pub fn digest(&self) -> String {
        digest_of(&self.manifest)
    }

    /// The manifest digest's hex, as a WasmPlugin's `sha256` carries it.
    pub fn sha256(&self) -> String {
        hex(&self.manifest)
    }

    /// The blobs the manifest names, config first, with their digests.
    pub fn blobs(&self) -> [(String, &[u8]); 2] {
        [
            (digest_of(&self.config), &self.config),
            (digest_of(&self.layer), &self.layer),
        ]
    }

    /// Total bytes stored or sent: manifest, config and layer.
    pub fn size(&self) -> usize {
        self.manifest.len() + self.config.len() + self.layer.len()
    }
}

/// A ustar archive with the one entry `plugin.wasm`: mode 0644, owner 0:0, no
/// owner names, mtime 0.
fn tar_of(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(WASM_FILE)
        .map_err(|e| format!("layer: {e}"))?;
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, wasm)
        .map_err(|e| format!("layer: {e}"))?;
    builder.into_inner().map_err(|e| format!("layer: {e}"))
}

/// gzip without a file name or timestamp (GzBuilder writes neither unless told,
/// and 255, "unknown", as the OS byte).
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    gz.write_all(data).map_err(|e| format!("layer: {e}"))?;
    gz.finish().map_err(|e| format!("layer: {e}"))
}

fn descriptor(
    media_type: MediaType,
    bytes: &[u8],
    annotations: Option<HashMap<String, String>>,
) -> Result<Descriptor> {
    let mut builder = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(parse_digest(&digest_of(bytes))?)
        .size(bytes.len() as u64);
    if let Some(annotations) = annotations {
        builder = builder.annotations(annotations);
    }
    builder.build().map_err(|e| format!("descriptor: {e}"))
}

fn parse_digest(digest: &str) -> Result<Digest> {
    digest
        .parse()
        .map_err(|e| format!("digest '{digest}': {e}"))
}

pub fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(bytes))
}

/// The layout beside a directory of modules: `target/dist/oci`.
pub fn layout_dir(modules: &Path) -> PathBuf {
    modules.join("oci")
}

/// The name a module's image has in the layout (its
/// `org.opencontainers.image.ref.name`): `<plugin>:<version>`, the repository's
/// last part and the tag of the image reference a gateway's `oci://` URL names,
/// so `skopeo inspect oci:target/dist/oci:<plugin>:<version>` finds it.
pub fn ref_name(plugin: &str) -> String {
    format!("{plugin}:{}", version())
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    dir.join("blobs").join("sha256").join(hex)
}

fn io(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `bytes` to `path` through a temporary file beside it, so a reader (or
/// a concurrent writer of the same content-addressed blob) never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

/// Adds `images` (ref name, image) to the layout in `dir`, replacing images of
/// the same names and keeping the others, then deletes the blobs no image in the
/// index names any more. index.json lists the images by ref name.
pub fn write_layout(dir: &Path, images: &[(String, &Image)]) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .map_err(|e| format!("oci-layout: {e}"))?;
    let layout = serde_json::to_vec(&layout).map_err(|e| format!("oci-layout: {e}"))?;
    write_if_changed(&dir.join("oci-layout"), &layout)?;
    for (_, image) in images {
        let manifest = (image.digest(), &image.manifest[..]);
        for (digest, bytes) in image.blobs().into_iter().chain([manifest]) {
            let path = blob_path(dir, &digest);
            write_if_changed(&path, bytes)?;
        }
    }
    // Existing entries by ref name, the new ones replacing them; sorted by name
    // so index.json depends on the set of images only.
    let mut entries: BTreeMap<String, Descriptor> = read_index(dir)
        .map(|index| {
            index
                .manifests()
                .iter()
                .filter_map(|d| Some((ref_name_of(d)?.to_string(), d.clone())))
                .collect()
        })
        .unwrap_or_default();
    for (name, image) in images {
        let annotations = HashMap::from([(REF_NAME.to_string(), name.clone())]);
        let d = descriptor(MediaType::ImageManifest, &image.manifest, Some(annotations))?;
        entries.insert(name.clone(), d);
    }
    // An entry whose blobs are gone (a layout cut short by hand) is dropped, not
    // left to fail the reader that asks for it.
    entries.retain(|name, entry| image_of(dir, name, entry).is_ok());
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(entries.values().cloned().collect::<Vec<_>>())
        .build()
        .map_err(|e| format!("index.json: {e}"))?;
    let index = serde_json::to_vec(&index).map_err(|e| format!("index.json: {e}"))?;
    write_if_changed(&dir.join("index.json"), &index)?;

    let mut keep = BTreeSet::new();
    for (name, entry) in &entries {
        let image = image_of(dir, name, entry)?;
        keep.insert(image.digest());
        keep.extend(image.blobs().into_iter().map(|(digest, _)| digest));
    }
    for entry in std::fs::read_dir(&blobs)
        .map_err(|e| io(&blobs, e))?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&format!("sha256:{name}")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    write_atomic(path, bytes)
}

fn read_index(dir: &Path) -> Result<ImageIndex> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io(&path, e))
}

fn ref_name_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

/// The image named `name` in the layout in `dir`, each blob checked against its
/// digest and size, and refused unless it has the shape Istio pulls.
pub fn read_image(dir: &Path, name: &str) -> Result<Image> {
    let index = read_index(dir)?;
    let entry = index
        .manifests()
        .iter()
        .find(|d| ref_name_of(d) == Some(name))
        .ok_or_else(|| format!("{}: no image named {name}", dir.display()))?;
    image_of(dir, name, entry)
}

fn image_of(dir: &Path, name: &str, entry: &Descriptor) -> Result<Image> {
    let manifest = read_blob(dir, entry)?;
    let parsed: ImageManifest = serde_json::from_slice(&manifest)
        .map_err(|e| io(&blob_path(dir, entry.digest().as_ref()), e))?;
    let [layer] = parsed.layers().as_slice() else {
        return Err(format!(
            "{}: image {name} has {} layers, not one",
            dir.display(),
            parsed.layers().len()
        ));
    };
    let shape_ok = layer.media_type().to_string() == LAYER_MEDIA_TYPE
        && parsed.config().media_type().to_string() == CONFIG_MEDIA_TYPE
        && parsed
            .annotations()
            .as_ref()
            .and_then(|a| a.get(VARIANT.0))
            .is_some_and(|v| v == VARIANT.1);
    if !shape_ok {
        return Err(format!(
            "{}: image {name} is not a compat wasm image",
            dir.display()
        ));
    }
    Ok(Image {
        config: read_blob(dir, parsed.config())?,
        layer: read_blob(dir, layer)?,
        manifest,
    })
}

fn read_blob(dir: &Path, d: &Descriptor) -> Result<Vec<u8>> {
    let digest = d.digest().to_string();
    let path = blob_path(dir, &digest);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    if digest_of(&bytes) != digest || bytes.len() as u64 != d.size() {
        return Err(format!(
            "{}: does not match its digest or size: rerun `cargo xtask build-all`",
            path.display()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
