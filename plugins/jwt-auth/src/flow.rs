//! One request's way through the plugin: the verified-token cache, the token
//! taken apart and its provider found, the keys (local, fetched, or waited for),
//! the checks, and what an allowed or refused request becomes.

use crate::config::{Config, Keys, Location};
use crate::remote::{self, Plan};
use crate::token::{self, Refusal};
use crate::{cache_key, jwks, request, verify, Pending, Shared, Stream, Verified};
use common::plugin::{CallResponse, Cx, DispatchError, Map, Step};
use std::rc::Rc;

/// The keys a fetch brought, or why it brought none. The body is read only for a
/// 200 of an acceptable size, and parsed by the same code as `local_jwks`.
pub(crate) fn fetched_keys(cx: &mut Cx<'_>, call: CallResponse) -> Result<Vec<jwks::Key>, String> {
    if call.headers == 0 {
        return Err("no answer (timeout, connection failure or no healthy host)".into());
    }
    let headers = cx.host.call_response_headers();
    let status = headers.values(":status").next().unwrap_or_default();
    if status != b"200" {
        return Err(format!(
            "status {}",
            String::from_utf8_lossy(status).escape_debug()
        ));
    }
    if call.body_size > remote::MAX_BODY_BYTES {
        return Err(format!(
            "a body of {} bytes, over {}",
            call.body_size,
            remote::MAX_BODY_BYTES
        ));
    }
    let body = cx.host.call_response_body(call.body_size);
    let doc = common::config::parse_json(&body).map_err(|e| format!("not a JWKS: {e}"))?;
    let set = jwks::parse(&doc, false).map_err(|e| format!("not a JWKS: {e}"))?;
    if set.keys.is_empty() {
        return Err(format!(
            "no key this plugin verifies with ({} skipped)",
            set.skipped
        ));
    }
    Ok(set.keys)
}

/// Checks a token found at `location` for a request that `allowed` providers
/// may have issued a token for.
pub(crate) fn check(
    shared: &Shared,
    stream: &mut Stream,
    cx: &mut Cx<'_>,
    location: usize,
    token: &[u8],
    allowed: u32,
) -> Step {
    let config = &shared.config;
    let now = cx.host.now_ms();
    let key = cache_key(token);
    let hit = shared
        .cache
        .try_borrow_mut()
        .ok()
        .and_then(|mut cache| cache.get(&key, now));
    if let Some(verified) = hit {
        let fits = allowed & (1 << verified.provider) != 0
            && config
                .providers
                .get(verified.provider)
                .is_some_and(|p| p.locations & (1 << location) != 0);
        if fits && now < verified.until_ms {
            let id = cx.id;
            log::debug!("#{id} token verified before");
            return allow(config, cx, location, verified.provider, &verified.headers);
        }
    }
    let parsed = match token::parse(token) {
        Ok(parsed) => parsed,
        Err(refusal) => return refuse(config, cx, refusal),
    };
    let found = config.providers.iter().enumerate().find(|(i, p)| {
        allowed & (1 << i) != 0
            && p.locations & (1 << location) != 0
            && parsed.claims.iss.as_deref() == Some(p.issuer.as_str())
    });
    let Some((index, provider)) = found else {
        return refuse(config, cx, Refusal::Issuer);
    };
    if let Err(refusal) = parsed.claims.check_time(
        now / 1000,
        provider.clock_skew_s,
        provider.require_expiration,
    ) {
        return refuse(config, cx, refusal);
    }
    let keys = match &provider.keys {
        Keys::Local(keys) => keys.clone(),
        Keys::Remote(remote) => {
            let Ok(mut state) = remote.state.try_borrow_mut() else {
                return refuse(config, cx, Refusal::KeysUnavailable);
            };
            for id in state.expire(now) {
                common::plugin::wake(id);
            }
            let pending = |fetch| Pending {
                token: token.to_vec(),
                location,
                provider: index,
                fetch,
            };
            match state.plan(now, remote.cache_ttl_ms, parsed.kid.as_deref()) {
                Plan::Use(keys) => keys,
                Plan::Wait => {
                    if !state.wait(cx.id) {
                        return refuse(config, cx, Refusal::KeysUnavailable);
                    }
                    cx.host.await_wake();
                    stream.pending = Some(pending(None));
                    let id = cx.id;
                    log::debug!("#{id} waiting for the keys being fetched");
                    return Step::Pause;
                }
                Plan::Fetch => {
                    let headers = [
                        (":method", "GET"),
                        (":path", remote.path.as_str()),
                        (":authority", remote.authority.as_str()),
                        ("accept", "application/json"),
                    ];
                    match cx
                        .host
                        .dispatch(&remote.cluster, &headers, remote.timeout_ms)
                    {
                        Ok(call) => {
                            state.started(call, now, remote.timeout_ms);
                            stream.pending = Some(pending(Some((remote.state.clone(), call))));
                            let id = cx.id;
                            log::debug!("#{id} fetching keys");
                            return Step::Pause;
                        }
                        Err(e) => {
                            let why = match e {
                                DispatchError::BadArgument => "unknown cluster or bad call headers",
                                DispatchError::InternalFailure => {
                                    "no healthy host or circuit breaker open"
                                }
                                DispatchError::Other(_) => "unexpected host status",
                            };
                            if let Some(held) = state.warning(now) {
                                let cluster = &remote.cluster;
                                let name = &provider.name;
                                log::warn!(
                                    "provider '{name}': JWKS fetch from cluster '{cluster}' not sent: {why} \
                                     ({held} more failures since the last warning)"
                                );
                            }
                            match state.keys() {
                                Some(keys) => keys,
                                None => return refuse(config, cx, Refusal::KeysUnavailable),
                            }
                        }
                    }
                }
            }
        }
    };
    finish(shared, cx, &parsed, index, &keys, location, token)
}

/// Carries on after the keys came (or did not): never fetches again.
pub(crate) fn resume(shared: &Shared, cx: &mut Cx<'_>, pending: &Pending) -> Step {
    let config = &shared.config;
    let keys = match config.providers.get(pending.provider).map(|p| &p.keys) {
        Some(Keys::Remote(remote)) => remote.state.try_borrow().ok().and_then(|s| s.keys()),
        Some(Keys::Local(keys)) => Some(keys.clone()),
        None => None,
    };
    let Some(keys) = keys else {
        return refuse(config, cx, Refusal::KeysUnavailable);
    };
    match token::parse(&pending.token) {
        Ok(parsed) => finish(
            shared,
            cx,
            &parsed,
            pending.provider,
            &keys,
            pending.location,
            &pending.token,
        ),
        Err(refusal) => refuse(config, cx, refusal),
    }
}

/// Verifies the signature and the audience, caches the result, and lets the
/// request on.
pub(crate) fn finish(
    shared: &Shared,
    cx: &mut Cx<'_>,
    parsed: &token::Token<'_>,
    index: usize,
    keys: &[jwks::Key],
    location: usize,
    token: &[u8],
) -> Step {
    let config = &shared.config;
    let Some(provider) = config.providers.get(index) else {
        return refuse(config, cx, Refusal::Issuer);
    };
    if let Err(refusal) =
        verify::signature(parsed, keys).and_then(|()| verify::audience(parsed, provider))
    {
        return refuse(config, cx, refusal);
    }
    let headers = verify::claim_headers(parsed, provider);
    let until_ms = parsed.claims.exp.map_or(u64::MAX, |exp| {
        let until = (exp + provider.clock_skew_s as f64) * 1000.0;
        if until <= 0.0 {
            0
        } else if until >= u64::MAX as f64 {
            u64::MAX
        } else {
            until as u64
        }
    });
    let verified = Rc::new(Verified {
        provider: index,
        until_ms,
        headers,
    });
    let now = cx.host.now_ms();
    if let Ok(mut cache) = shared.cache.try_borrow_mut() {
        cache.insert(cache_key(token), verified.clone(), now);
    }
    let id = cx.id;
    log::debug!("#{id} token verified (provider '{}')", provider.name);
    allow(config, cx, location, index, &verified.headers)
}

/// Sets the claim headers and, unless the provider forwards it, takes the token
/// out of the request.
pub(crate) fn allow(
    config: &Config,
    cx: &mut Cx<'_>,
    location: usize,
    index: usize,
    headers: &[(usize, Vec<u8>)],
) -> Step {
    let Some(provider) = config.providers.get(index) else {
        return Step::Continue;
    };
    for (at, value) in headers {
        if let Some((_, name)) = provider.claim_to_headers.get(*at) {
            if !cx.host.replace(Map::Request, name, value) {
                return edit_refused(cx, name);
            }
        }
    }
    if provider.forward {
        return Step::Continue;
    }
    match config.locations.get(location) {
        Some(Location::Header { name, .. }) if !cx.host.remove(Map::Request, name) => {
            return edit_refused(cx, name);
        }
        Some(Location::Param(name)) => {
            let map = cx.host.request_headers();
            let path = map.values(":path").next().unwrap_or_default();
            let stripped = request::path_without_param(path, name);
            if !cx.host.replace(Map::Request, ":path", &stripped) {
                return edit_refused(cx, ":path");
            }
        }
        Some(Location::Cookie(name)) => {
            let map = cx.host.request_headers();
            let cookies: Vec<&[u8]> = map.values("cookie").collect();
            let ok = match request::cookies_without(&cookies, name) {
                Some(rest) => cx.host.replace(Map::Request, "cookie", &rest),
                None => cx.host.remove(Map::Request, "cookie"),
            };
            if !ok {
                return edit_refused(cx, "cookie");
            }
        }
        Some(Location::Header { .. }) | None => {}
    }
    Step::Continue
}

pub(crate) fn refuse(config: &Config, cx: &mut Cx<'_>, refusal: Refusal) -> Step {
    let id = cx.id;
    log::debug!("#{id} refused: {}", refusal.detail());
    let challenge = match refusal {
        Refusal::Missing => &config.challenge_missing,
        _ => &config.challenge_invalid,
    };
    cx.host.send_response(
        refusal.status(),
        refusal.details(),
        &[("www-authenticate", challenge.as_bytes())],
        refusal.body().as_bytes(),
    );
    Step::Stop
}

/// The host refused to change the request's headers: forwarding it could pass a
/// client-sent identity (or the token) upstream, so it is answered instead.
pub(crate) fn edit_refused(cx: &mut Cx<'_>, name: &str) -> Step {
    let id = cx.id;
    log::warn!("#{id} cannot update request header '{name}': answered 500");
    cx.host.send_response(
        500,
        "jwt_auth_header_update_failed",
        &[],
        b"Internal error\n",
    );
    Step::Stop
}
