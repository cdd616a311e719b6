//! `cargo xtask push`: the images `build-all` wrote to `target/dist/oci/`, pushed
//! to the registries the gateways' `oci://` URLs name, over the OCI distribution
//! API (oci-client: token and basic auth, chunked uploads), with no Docker.

use crate::build::dist_dir;
use crate::gateway::{self, Url};
use crate::oci::{self, Image, MANIFEST_MEDIA_TYPE};
use crate::util::{Args, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variables that carry credentials, before any Docker config.
pub const USERNAME_VAR: &str = "MESH_PLUGINS_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "MESH_PLUGINS_REGISTRY_PASSWORD";

pub fn run_command(args: &[String]) -> Result<()> {
    let mut gateways_path = gateway::default_dir();
    let mut only: Option<String> = None;
    let mut modules = dist_dir();
    let mut insecure = false;
    let mut args = Args::new("push", args);
    while let Some(flag) = args.flag() {
        match flag {
            "--gateways" => gateways_path = gateway::given(args.value(flag)?)?,
            "--gateway" => only = Some(args.value(flag)?),
            "--modules" => modules = PathBuf::from(args.value(flag)?),
            "--insecure" => insecure = true,
            other => return Err(args.unexpected(other)),
        }
    }
    let gateways = gateway::select(&gateways_path, only.as_deref())?;
    // Image reference (without oci://) -> the module it holds; two gateways
    // naming one image push it once.
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for g in &gateways {
        match &g.url {
            Url::Oci(_) => {
                for module in g.modules() {
                    let url = g.url.module(&module);
                    let name = url.strip_prefix("oci://").unwrap_or(&url).to_string();
                    targets.insert(name, module);
                }
            }
            Url::File(_) | Url::Https(_) => {
                println!("{}: url is not oci://, nothing to push", g.display)
            }
        }
    }
    if targets.is_empty() {
        return Err(format!(
            "push: no gateway in {} has an oci:// url: nothing to push",
            gateway::display(&gateways_path)
        ));
    }
    let layout = oci::layout_dir(&modules);
    let mut images = Vec::new();
    for (name, module) in &targets {
        let reference: Reference = name.parse().map_err(|e| {
            format!(
                "oci://{name}: not an image reference: {e} (a repository path is \
                     lowercase letters, digits, '.', '_', '-' and '/')"
            )
        })?;
        let image = oci::read_image(&layout, &oci::ref_name(module))
            .map_err(|e| format!("{e} (run `cargo xtask build-all` first)"))?;
        images.push((reference, image));
    }
    let credentials = Credentials::from_environment()?;
    // reqwest is built without a default crypto provider (see Cargo.toml); an
    // error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain: Vec<String> = images
        .iter()
        .map(|(r, _)| r.resolve_registry().to_string())
        .filter(|registry| insecure || is_loopback(registry))
        .collect();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(Duration::from_secs(60)),
        ..ClientConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("push: {e}"))?;
    for (reference, image) in &images {
        let auth = credentials.for_registry(reference.registry());
        let line = runtime
            .block_on(push(&client, reference, image, &auth.0))
            .map_err(|e| explain(e, reference, &auth, &credentials.where_to_log_in()))?;
        println!("{line}");
    }
    Ok(())
}

/// Pushes one image: the blobs the registry lacks, then the manifest under its
/// tag, then reads the tag's digest back. Returns the line to print.
async fn push(
    client: &Client,
    reference: &Reference,
    image: &Image,
    auth: &RegistryAuth,
) -> std::result::Result<String, OciDistributionError> {
    client
        .auth(reference, auth, RegistryOperation::Push)
        .await?;
    let (mut sent, mut present) = (0, 0);
    for (digest, bytes) in image.blobs() {
        if client.blob_exists(reference, &digest).await? {
            present += 1;
        } else {
            client.push_blob(reference, bytes.to_vec(), &digest).await?;
            sent += 1;
        }
    }
    let content_type = MANIFEST_MEDIA_TYPE
        .parse()
        .map_err(|_| OciDistributionError::GenericError(None))?;
    client
        .push_manifest_raw(reference, image.manifest.clone(), content_type)
        .await?;
    let digest = client.fetch_manifest_digest(reference, auth).await?;
    if digest != image.digest() {
        return Err(OciDistributionError::SpecViolationError(format!(
            "the registry holds {digest} under the tag, not the pushed {}",
            image.digest()
        )));
    }
    Ok(format!(
        "oci://{reference}@{digest}  ({sent} blob{} sent, {present} already there)",
        if sent == 1 { "" } else { "s" }
    ))
}

/// Plain HTTP is for registries on this machine only (or `--insecure`).
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Who `push` logs in as, and where that came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub source: String,
}

/// The credentials at hand: the environment variables, else the Docker config's
/// `auths` entries by registry.
#[derive(Debug, Default)]
pub struct Credentials {
    env: Option<Login>,
    docker: BTreeMap<String, Login>,
    docker_file: Option<PathBuf>,
}

impl Credentials {
    fn from_environment() -> Result<Credentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file = match (var("DOCKER_CONFIG"), var("HOME")) {
            (Some(dir), _) => Some(Path::new(&dir).join("config.json")),
            (None, Some(home)) => Some(Path::new(&home).join(".docker").join("config.json")),
            (None, None) => None,
        };
        let text = match &file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            },
            None => None,
        };
        Credentials::new(
            var(USERNAME_VAR),
            var(PASSWORD_VAR),
            file.zip(text)
                .as_ref()
                .map(|(p, t)| (p.as_path(), t.as_str())),
        )
    }

    /// From the two variables' values and a Docker config file's path and text.
    pub fn new(
        user: Option<String>,
        password: Option<String>,
        docker: Option<(&Path, &str)>,
    ) -> Result<Credentials> {
        let env = match (user, password) {
            (Some(user), Some(password)) => Some(Login {
                user,
                password,
                source: format!("{USERNAME_VAR}/{PASSWORD_VAR}"),
            }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "push: set both {USERNAME_VAR} and {PASSWORD_VAR}, or neither"
                ))
            }
        };
        let mut credentials = Credentials {
            env,
            ..Credentials::default()
        };
        if let Some((path, text)) = docker {
            credentials.docker = docker_auths(path, text)?;
            credentials.docker_file = Some(path.to_path_buf());
        }
        Ok(credentials)
    }

    /// The login for `registry` (as the image reference names it).
    pub fn for_registry(&self, registry: &str) -> (RegistryAuth, Option<Login>) {
        let login = self.env.clone().or_else(|| {
            let key = registry_key(registry);
            self.docker.get(&key).cloned()
        });
        match login {
            Some(l) => (
                RegistryAuth::Basic(l.user.clone(), l.password.clone()),
                Some(l),
            ),
            None => (RegistryAuth::Anonymous, None),
        }
    }

    fn where_to_log_in(&self) -> String {
        let file = self
            .docker_file
            .as_ref()
            .map_or("$DOCKER_CONFIG/config.json".to_string(), |p| {
                p.display().to_string()
            });
        format!("set {USERNAME_VAR} and {PASSWORD_VAR}, or an auths entry in {file}")
    }
}

/// A registry as Docker config keys name it: no scheme, no path, Docker Hub's
/// aliases as one.
fn registry_key(registry: &str) -> String {
    let host = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// The `auths` of a Docker config: `auth` (base64 of `user:password`), or
/// `username` and `password`. Entries without either (credential helpers keep
/// the secret elsewhere) are skipped.
fn docker_auths(path: &Path, text: &str) -> Result<BTreeMap<String, Login>> {
    use base64::Engine;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let mut logins = BTreeMap::new();
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(logins);
    };
    for (registry, entry) in auths {
        let source = format!("{} auths.{registry}", path.display());
        let login = if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            // The message never quotes the value: it holds the password.
            let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return Err(bad(&format!(
                    "auths.{registry}.auth: not base64 of user:password"
                )));
            };
            Login {
                user: user.into(),
                password: password.into(),
                source,
            }
        } else if let (Some(user), Some(password)) = (
            entry.get("username").and_then(|u| u.as_str()),
            entry.get("password").and_then(|p| p.as_str()),
        ) {
            Login {
                user: user.into(),
                password: password.into(),
                source,
            }
        } else {
            continue;
        };
        logins.insert(registry_key(registry), login);
    }
    Ok(logins)
}

/// One line naming the image and what went wrong, never the password.
fn explain(
    e: OciDistributionError,
    reference: &Reference,
    auth: &(RegistryAuth, Option<Login>),
    hint: &str,
) -> String {
    let registry = reference.registry();
    let repository = format!("{registry}/{}", reference.repository());
    let status = match &e {
        OciDistributionError::RequestError(r) => r.status().map(|s| s.as_u16()),
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        _ => None,
    };
    let codes: Vec<&OciErrorCode> = match &e {
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().map(|e| &e.code).collect()
        }
        _ => Vec::new(),
    };
    let has = |code: OciErrorCode| codes.iter().any(|c| **c == code);
    let login = |what: &str| match &auth.1 {
        Some(l) => format!(
            "push oci://{reference}: {registry} {what} for user '{}' (credentials from {})",
            l.user, l.source
        ),
        None => format!("push oci://{reference}: {registry} {what} without credentials: {hint}"),
    };
    let message = if let OciDistributionError::RequestError(r) = &e {
        if r.is_connect() || r.is_timeout() {
            format!(
                "push oci://{reference}: registry {registry} unreachable ({})",
                root_cause(r)
            )
        } else if status.is_none() {
            format!(
                "push oci://{reference}: connection to {registry} lost ({}); push again: \
                 blobs already sent are not sent again",
                root_cause(r)
            )
        } else {
            String::new()
        }
    } else {
        String::new()
    };
    let message = if !message.is_empty() {
        message
    } else if status == Some(401) || has(OciErrorCode::Unauthorized) {
        login("refused the login")
    } else if status == Some(403) || has(OciErrorCode::Denied) {
        login("denied the push")
    } else if status == Some(404)
        || has(OciErrorCode::NameUnknown)
        || has(OciErrorCode::NameInvalid)
    {
        format!("push oci://{reference}: {registry} has no repository {repository} (or refuses that name): check the gateway's url")
    } else if let OciDistributionError::ServerError { code, url, message } = &e {
        let message = message.trim();
        let message = if message.is_empty() {
            "no message"
        } else {
            message
        };
        format!("push oci://{reference}: {registry} answered HTTP {code} ({message}) to {url}: is it an OCI registry?")
    } else {
        format!("push oci://{reference}: {e}")
    };
    let message = message.replace(['\n', '\r'], " ");
    match &auth.1 {
        Some(l) if !l.password.is_empty() => message.replace(&l.password, "***"),
        _ => message,
    }
}

/// The innermost error under a reqwest error ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests;
