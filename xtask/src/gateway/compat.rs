//! What each Istio API and Istio version can take: a gateway file is refused at
//! load time, the field named with the Istio version it needs, when its `api:` or
//! its `istio:` version cannot carry what it asks for. The floors come from
//! istio/api's history (the release branch each field first shipped in).

use super::{Api, FailStrategy, Gateway, Istio, Target};

/// The oldest Istio `istio:` may name: the first with WasmPlugin.
pub const OLDEST: Istio = Istio::v(12);
/// TrafficExtension (istio/api 9e4a5be6f, release-1.30).
pub const TRAFFIC_EXTENSION: Istio = Istio::v(30);
/// WasmPlugin `vmConfig` (`env`, `valueFrom`; istio/api 4293757b0, release-1.14).
pub const VM_CONFIG: Istio = Istio::v(14);
/// WasmPlugin `match` (istio/api d5358d93e, release-1.16).
pub const MATCH: Istio = Istio::v(16);
/// WasmPlugin `failStrategy` (istio/api 9242317ad, release-1.19); before it a
/// WasmPlugin always failed closed, so FAIL_CLOSE is left out there.
pub const FAIL_STRATEGY: Istio = Istio::v(19);
/// WasmPlugin `type` (istio/api 3cfacc600, release-1.20); below it the field is
/// left out, which means HTTP there too.
pub const PLUGIN_TYPE: Istio = Istio::v(20);
/// `targetRefs` on WasmPlugin and EnvoyFilter (istio/api fe48267f8 and
/// 2410bbc01, release-1.22).
pub const TARGET_REFS: Istio = Istio::v(22);
/// Istio sets Envoy's `failure_policy` (and not the deprecated `fail_open`) for
/// proxies from 1.25 on; an EnvoyFilter follows it.
pub const FAILURE_POLICY: Istio = Istio::v(25);
/// `failStrategy: FAIL_RELOAD` (istio/api 5e743e9aa, release-1.27).
pub const FAIL_RELOAD: Istio = Istio::v(27);

/// Parses `istio:`: a quoted `"1.<minor>"`, at least [`OLDEST`]. Errors are
/// without the field's name.
pub fn parse_istio(value: &serde_json::Value) -> Result<Istio, String> {
    let text = match value {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Number(n) => {
            return Err(format!(
                "write the version quoted (istio: \"{n}\"): YAML reads an unquoted 1.30 as the number 1.3"
            ))
        }
        _ => return Err("expected a version such as \"1.28\"".into()),
    };
    let minor = text
        .strip_prefix("1.")
        .filter(|m| !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| {
            format!("'{text}' is not an Istio version (expected 1.<minor>, such as \"1.28\")")
        })?;
    let istio = Istio::v(minor);
    if istio < OLDEST {
        return Err(format!(
            "{istio} is not supported: Istio runs wasm plugins from {OLDEST} on (WasmPlugin)"
        ));
    }
    Ok(istio)
}

/// Refuses what `gateway.api` or `gateway.istio` cannot carry. `pull_secret`:
/// whether the gateway itself (not an instance) sets `imagePullSecret`.
pub fn check(gateway: &Gateway, pull_secret: bool) -> Result<(), String> {
    let (api, istio) = (gateway.api, gateway.istio);
    let targets = format!("this gateway targets istio: \"{istio}\"");
    let needs = |field: &str, what: &str, floor: Istio| -> Result<(), String> {
        if istio < floor {
            Err(format!("{field}: {what} needs Istio {floor}+ ({targets})"))
        } else {
            Ok(())
        }
    };
    if api == Api::TrafficExtension {
        needs("api", "TrafficExtension", TRAFFIC_EXTENSION)?;
    }
    if matches!(gateway.target, Target::TargetRefs(_)) && api != Api::TrafficExtension {
        needs(
            "targetRefs",
            &format!("targetRefs on {}", api.as_str()),
            TARGET_REFS,
        )?;
    }
    if api == Api::EnvoyFilter && pull_secret {
        return Err(format!("imagePullSecret: {NO_SECRET}"));
    }
    for i in &gateway.instances {
        let at = |e: String| format!("plugins[{}] ({}): {e}", i.index, i.name);
        if i.fail_strategy == FailStrategy::FailReload {
            needs("failStrategy", "FAIL_RELOAD", FAIL_RELOAD).map_err(at)?;
        }
        if api == Api::WasmPlugin {
            if i.fail_strategy == FailStrategy::FailOpen {
                needs("failStrategy", "FAIL_OPEN on WasmPlugin", FAIL_STRATEGY).map_err(at)?;
            }
            if !i.env.is_empty() {
                needs("env", "vmConfig.env on WasmPlugin", VM_CONFIG).map_err(at)?;
            }
            if i.matches.is_some() {
                needs("match", "match on WasmPlugin", MATCH).map_err(at)?;
            }
        }
        if api == Api::EnvoyFilter {
            if i.image_pull_secret.is_some() {
                return Err(at(format!("imagePullSecret: {NO_SECRET}")));
            }
            let clauses = i
                .matches
                .as_ref()
                .and_then(|m| m.as_array())
                .map_or(0, Vec::len);
            if clauses > 1 {
                return Err(at(format!(
                    "match: api EnvoyFilter takes at most one match clause, got {clauses}: a clause \
                     becomes the HTTP_FILTER patch's context and listener ports, and two clauses \
                     that select the same listener would insert the filter twice"
                )));
            }
        }
    }
    Ok(())
}

/// Why an EnvoyFilter cannot carry `imagePullSecret`.
const NO_SECRET: &str = "api EnvoyFilter cannot carry an image pull secret: istiod reads the \
    named Secret for WasmPlugin and TrafficExtension only, so an EnvoyFilter would need the \
    credentials themselves in the manifest; use api: WasmPlugin or TrafficExtension, or a \
    registry the proxies can pull from without credentials";

#[cfg(test)]
mod tests;
