//! A gateway file as written, as serde types: they read it (with
//! `common::config::from_value`, so errors name the field path and never take a
//! list for an object) and they are its JSON Schema (`schemas/gateway.json`), so
//! the schema an editor checks against cannot drift from what xtask accepts. The
//! field types check themselves while they are read; what spans several fields
//! (the name against the file's, unique instance names, the Istio version's
//! floors, each instance's `config` by its plugin) is checked in `parse`.
//! `errorMessage` and `patternErrorMessage` are yaml-language-server's (and VS
//! Code's) keywords for what an editor says; validators ignore them.

mod fields;

pub use fields::*;

use common::config::fields::{Int, NonEmpty};

use super::{Api, FailStrategy, Phase};
use schemars::JsonSchema;
use serde::Deserialize;

/// A gateway file: which workloads, where the modules come from, and the
/// plugin instances they run.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "mesh-plugins gateway",
    extend("oneOf" = [{"required": ["selector"]}, {"required": ["targetRefs"]}])
)]
pub struct GatewaySpec {
    /// The gateway's name: a lowercase RFC 1123 label, the file's own name
    /// (`<name>.yaml`); its manifests are named after it.
    pub name: Name,
    /// The Kubernetes namespace of the WasmPlugins (`istio-system` for the
    /// ingress gateway's, say).
    pub namespace: Name,
    /// The workloads' labels (`{istio: ingressgateway}`). Give this or
    /// `targetRefs`: without either, Istio applies the plugins to every workload
    /// in the namespace.
    pub selector: Option<Labels>,
    /// The Gateway API resources the plugins attach to (Istio 1.22+). Give this
    /// or `selector`.
    pub target_refs: Option<TargetRefs>,
    /// Where Istio fetches the modules: `oci://<registry>/<repository>` (as
    /// `<url>/<plugin>:<version>`), `file:///<dir>` or `https://<base>` (as
    /// `<url>/<plugin>.wasm`).
    pub url: UrlText,
    /// When Istio pulls the images again; each instance may say otherwise.
    pub image_pull_policy: Option<Choice<PullPolicy>>,
    /// The Secret holding the registry's credentials; each instance may say
    /// otherwise (not with `api: EnvoyFilter`).
    pub image_pull_secret: Option<NonEmpty>,
    /// The Istio resource the manifests are: WasmPlugin (the default),
    /// TrafficExtension (Istio 1.30+) or EnvoyFilter.
    pub api: Option<Choice<Api>>,
    /// The oldest Istio the manifests must work on, quoted (`"1.28"`, the
    /// default); a field it cannot carry is refused.
    pub istio: Option<IstioVersion>,
    /// Fuse neighbouring instances that can share a filter into one chain
    /// filter (default false); each instance may say otherwise.
    pub chain: Option<bool>,
    /// The plugin instances, in any order: Istio runs them by phase, then
    /// priority (highest first), then name.
    #[allow(dead_code)] // only checked here: `parse` reads each instance itself
    pub plugins: Instances,
}

/// One plugin instance: a WasmPlugin of its own, or one instance of a chain.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceSpec {
    /// The plugin it runs (a crate under `plugins/`).
    pub plugin: PluginName,
    /// Its name, unique in the gateway (default: the plugin's); the WasmPlugin
    /// is `<gateway>-<name>`.
    pub name: Option<Name>,
    /// Istio's phase: AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE (the default,
    /// after the others).
    pub phase: Option<Choice<Phase>>,
    /// Order within the phase, highest first (default 0; ties by name).
    pub priority: Option<Int<{ i32::MIN as i64 }, { i32::MAX as i64 }>>,
    /// What Envoy does when the plugin cannot run: FAIL_CLOSE (the default),
    /// FAIL_OPEN or FAIL_RELOAD (Istio 1.27+).
    pub fail_strategy: Option<Choice<FailStrategy>>,
    /// The plugin's configuration (`pluginConfig`), checked by its own config
    /// type; absent means the plugin's defaults.
    #[allow(dead_code)] // checked in `parse`, by the plugin's own type
    pub config: Option<PluginConfig>,
    /// Environment variables of the plugin's VM.
    pub env: Option<Vec<EnvSpec>>,
    /// Which traffic it applies to (Istio's `match`), passed through.
    #[serde(rename = "match")]
    #[allow(dead_code)] // only checked: `parse` passes it on as written
    pub matches: Option<Vec<MatchSpec>>,
    /// When Istio pulls the image again (default: the gateway's).
    pub image_pull_policy: Option<Choice<PullPolicy>>,
    /// The Secret with the registry's credentials (default: the gateway's).
    pub image_pull_secret: Option<NonEmpty>,
    /// Whether it may be fused with its neighbours into a chain filter
    /// (default: the gateway's `chain`).
    pub chain: Option<bool>,
}

/// An environment variable of the plugin's VM.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend(
    "if" = {"properties": {"valueFrom": {"const": "HOST"}}, "required": ["valueFrom"]},
    "then" = {"properties": {"value": {
        "type": "null",
        "errorMessage": "must be left out with valueFrom: HOST"
    }}}
))]
pub struct EnvSpec {
    /// The variable's name (letters, digits and `_`, not starting with a digit),
    /// once per instance.
    pub name: EnvName,
    /// Its value (default empty); none with `valueFrom: HOST`.
    pub value: Option<String>,
    /// INLINE (the default: `value`) or HOST (the proxy's own variable of that
    /// name).
    pub value_from: Option<Choice<ValueFrom>>,
}

/// One of Istio's match clauses (only checked: passed on as written).
#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// UNDEFINED, CLIENT, SERVER or CLIENT_AND_SERVER (a gateway's listeners
    /// are CLIENT).
    pub mode: Option<Choice<MatchMode>>,
    /// The ports it applies to.
    pub ports: Option<Vec<PortSpec>>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// A port number, 1..=65535.
    pub number: Int<1, 65535>,
}

/// A Gateway API resource the plugins attach to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"kind": {"not": {"const": "Gateway"}}}, "required": ["kind"]},
    "then" = {"required": ["group"]}
))]
pub struct TargetRefSpec {
    /// Its API group (default for kind Gateway: `gateway.networking.k8s.io`;
    /// required for any other kind).
    pub group: Option<String>,
    /// Its kind (`Gateway`, `Service`, ...).
    pub kind: NonEmpty,
    /// Its name, in the gateway's namespace.
    pub name: NonEmpty,
    /// Refused: Istio's CRDs require the target in the resource's own namespace.
    #[schemars(skip)]
    pub namespace: Option<String>,
}

impl Named for Phase {
    const FIELD: &'static str = "phase";
    const ALL: &'static [Self] = &Phase::ALL;
    const OR: bool = true;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for FailStrategy {
    const FIELD: &'static str = "failStrategy";
    const ALL: &'static [Self] = &FailStrategy::ALL;
    const OR: bool = true;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Named for Api {
    const FIELD: &'static str = "api";
    const ALL: &'static [Self] = &Api::ALL;
    const OR: bool = true;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Kubernetes' image pull policies, as Istio names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Unspecified,
    IfNotPresent,
    Always,
}

impl Named for PullPolicy {
    const FIELD: &'static str = "imagePullPolicy";
    const ALL: &'static [Self] = &[
        PullPolicy::Unspecified,
        PullPolicy::IfNotPresent,
        PullPolicy::Always,
    ];
    const OR: bool = false;
    fn name(self) -> &'static str {
        match self {
            PullPolicy::Unspecified => "UNSPECIFIED_POLICY",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFrom {
    Inline,
    Host,
}

impl Named for ValueFrom {
    const FIELD: &'static str = "valueFrom";
    const ALL: &'static [Self] = &[ValueFrom::Inline, ValueFrom::Host];
    const OR: bool = true;
    fn name(self) -> &'static str {
        match self {
            ValueFrom::Inline => "INLINE",
            ValueFrom::Host => "HOST",
        }
    }
}

/// Istio's traffic selector modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    Undefined,
    Client,
    Server,
    ClientAndServer,
}

impl Named for MatchMode {
    const FIELD: &'static str = "mode";
    const ALL: &'static [Self] = &[
        MatchMode::Undefined,
        MatchMode::Client,
        MatchMode::Server,
        MatchMode::ClientAndServer,
    ];
    const OR: bool = false;
    fn name(self) -> &'static str {
        match self {
            MatchMode::Undefined => "UNDEFINED",
            MatchMode::Client => "CLIENT",
            MatchMode::Server => "SERVER",
            MatchMode::ClientAndServer => "CLIENT_AND_SERVER",
        }
    }
}
