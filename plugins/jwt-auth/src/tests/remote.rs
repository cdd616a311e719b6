//! The flow with remote keys: one fetch shared by the streams that wait, its
//! failures, a fetcher that leaves, rotation and the refresh policy.

use super::keys::Signer;
use super::*;
use common::plugin::DispatchError;

fn remote_config() -> Value {
    json!({
        "providers": {"p": {
            "issuer": ISS,
            "remote_jwks": {"cluster": "outbound|443||keys.test", "path": "/jwks", "timeout_ms": 500, "cache_ttl_s": 60},
            "claim_to_headers": [{"claim": "sub", "header": "x-user-id"}],
        }},
        "rules": [{"prefix": "/", "providers": ["p"]}],
    })
}

fn answer(mock: &mut Mock, status: &str, body: &str) -> CallResponse {
    mock.call_headers = vec![(":status".into(), status.as_bytes().to_vec())];
    mock.call_body = body.as_bytes().to_vec();
    CallResponse {
        token: 1,
        headers: 1,
        body_size: body.len(),
    }
}

#[test]
fn remote_keys_are_fetched_once_and_shared_with_waiting_streams() {
    let ec = Signer::ec256("e1");
    let list = instances(remote_config());
    let token = ec.token(&claims(600));
    let auth = bearer(&token);
    let mut first = get("/", &[("authorization", &auth)]);
    let mut a = Chain::new(list.clone());
    assert_eq!(a.on_request_headers(&mut first, 1), Step::Pause);
    let effects = first.take();
    assert!(
        effects.contains(&Effect::Dispatch(
            "outbound|443||keys.test".into(),
            vec![
                (":method".into(), "GET".into()),
                (":path".into(), "/jwks".into()),
                (":authority".into(), "keys.test".into()),
                ("accept".into(), "application/json".into()),
            ],
            500
        )),
        "{effects:?}"
    );
    // A second stream while the fetch is out waits for it, sending nothing.
    let mut second = get("/", &[("authorization", &auth)]);
    let mut b = Chain::new(list.clone());
    assert_eq!(b.on_request_headers(&mut second, 2), Step::Pause);
    assert!(second.awaiting);
    assert!(!second
        .take()
        .iter()
        .any(|e| matches!(e, Effect::Dispatch(..))));
    let jwks = json!({"keys": [ec.jwk]}).to_string();
    let call = answer(&mut first, "200", &jwks);
    assert_eq!(a.on_call_response(&mut first, 1, call), Step::Continue);
    assert_eq!(first.request_values("x-user-id"), ["user-1"]);
    assert_eq!(common::plugin::take_wakes(), [2]);
    assert_eq!(b.on_wake(&mut second, 2), Step::Continue);
    assert_eq!(second.request_values("x-user-id"), ["user-1"]);
    // Later requests use the cached keys.
    let other = ec.token(&claims(500));
    let mut third = get("/", &[("authorization", &bearer(&other))]);
    assert_eq!(
        Chain::new(list).on_request_headers(&mut third, 3),
        Step::Continue
    );
    assert!(!third
        .take()
        .iter()
        .any(|e| matches!(e, Effect::Dispatch(..))));
}

#[test]
fn a_failed_fetch_fails_closed_and_the_next_request_tries_again() {
    let ec = Signer::ec256("e1");
    let token = ec.token(&claims(600));
    let auth = bearer(&token);
    let bodies = [
        ("500", "oops"),
        ("200", "not json"),
        (
            "200",
            r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}"#,
        ),
        (
            "200",
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}]}"#,
        ),
        ("200", r#"{"keys": []}"#),
    ];
    for (status_code, body) in bodies {
        let list = instances(remote_config());
        let mut mock = get("/", &[("authorization", &auth)]);
        let mut chain = Chain::new(list.clone());
        assert_eq!(chain.on_request_headers(&mut mock, 1), Step::Pause);
        mock.take();
        let call = answer(&mut mock, status_code, body);
        let step = chain.on_call_response(&mut mock, 1, call);
        let effects = mock.take();
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Respond(401, d, _, b) if d == "jwt_auth_keys_unavailable" && b == "signing keys unavailable\n")),
            "{body}: {effects:?}"
        );
        assert_eq!(step, Step::Pause, "a chain holds a replied request");
        assert!(
            effects.iter().any(|e| matches!(e, Effect::Log(log::Level::Warn, l) if l.contains("JWKS fetch from cluster 'outbound|443||keys.test' failed"))),
            "{body}: {effects:?}"
        );
        // The next request fetches again.
        let mut next = get("/", &[("authorization", &auth)]);
        assert_eq!(
            Chain::new(list).on_request_headers(&mut next, 2),
            Step::Pause
        );
        assert!(next
            .take()
            .iter()
            .any(|e| matches!(e, Effect::Dispatch(..))));
    }
    // No answer at all (timeout): the same.
    let list = instances(remote_config());
    let mut mock = get("/", &[("authorization", &auth)]);
    let mut chain = Chain::new(list);
    chain.on_request_headers(&mut mock, 1);
    mock.take();
    let none = CallResponse {
        token: 1,
        headers: 0,
        body_size: 0,
    };
    let step = chain.on_call_response(&mut mock, 1, none);
    assert_eq!(status(&mut mock, step), 401);
}

#[test]
fn a_fetcher_that_leaves_wakes_its_waiters_who_are_refused() {
    let ec = Signer::ec256("e1");
    let list = instances(remote_config());
    let auth = bearer(&ec.token(&claims(600)));
    let mut first = get("/", &[("authorization", &auth)]);
    let mut a = Chain::new(list.clone());
    a.on_request_headers(&mut first, 1);
    let mut second = get("/", &[("authorization", &auth)]);
    let mut b = Chain::new(list.clone());
    assert_eq!(b.on_request_headers(&mut second, 2), Step::Pause);
    common::plugin::take_wakes();
    drop(a);
    assert_eq!(common::plugin::take_wakes(), [2]);
    let step = b.on_wake(&mut second, 2);
    assert_eq!(status(&mut second, step), 401);
    // The next request starts a fetch of its own.
    let mut third = get("/", &[("authorization", &auth)]);
    assert_eq!(
        Chain::new(list).on_request_headers(&mut third, 3),
        Step::Pause
    );
    assert!(third
        .take()
        .iter()
        .any(|e| matches!(e, Effect::Dispatch(..))));
}

#[test]
fn a_new_kid_refetches_and_failed_refreshes_keep_the_old_keys() {
    let old = Signer::ec256("old");
    let new = Signer::ec256("new");
    let list = instances(remote_config());
    let fetch = |mock: &mut Mock, chain: &mut Chain, keys: &[&Signer], status_code: &str| {
        let body =
            json!({"keys": keys.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}).to_string();
        let call = answer(mock, status_code, &body);
        chain.on_call_response(mock, 1, call)
    };
    let mut m = get("/", &[("authorization", &bearer(&old.token(&claims(600))))]);
    let mut c = Chain::new(list.clone());
    assert_eq!(c.on_request_headers(&mut m, 1), Step::Pause);
    assert_eq!(fetch(&mut m, &mut c, &[&old], "200"), Step::Continue);
    // A token with a kid the keys lack, 40 s later: fetched again, then verified.
    let mut m = get("/", &[("authorization", &bearer(&new.token(&claims(600))))]);
    m.now += 40_000;
    let mut c = Chain::new(list.clone());
    assert_eq!(c.on_request_headers(&mut m, 2), Step::Pause);
    assert_eq!(fetch(&mut m, &mut c, &[&new], "200"), Step::Continue);
    // Past the TTL (60 s) the refresh fails: the keys held still serve.
    let mut m = get("/", &[("authorization", &bearer(&new.token(&claims(500))))]);
    m.now += 110_000;
    let mut c = Chain::new(list.clone());
    assert_eq!(c.on_request_headers(&mut m, 3), Step::Pause);
    assert_eq!(fetch(&mut m, &mut c, &[], "503"), Step::Continue);
    // And within 30 s of that failure no request waits for another try.
    let mut m = get("/", &[("authorization", &bearer(&new.token(&claims(400))))]);
    m.now += 120_000;
    assert_eq!(
        Chain::new(list).on_request_headers(&mut m, 4),
        Step::Continue
    );
}

#[test]
fn an_unknown_cluster_fails_closed_with_a_warning() {
    let ec = Signer::ec256("e1");
    let list = instances(remote_config());
    let mut mock = get("/", &[("authorization", &bearer(&ec.token(&claims(600))))]);
    mock.refuse_dispatch = Some(DispatchError::BadArgument);
    let step = Chain::new(list).on_request_headers(&mut mock, 1);
    let effects = mock.effects().clone();
    assert_eq!(status(&mut mock, step), 401);
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::Log(log::Level::Warn, l) if l.contains("unknown cluster"))
        ),
        "{effects:?}"
    );
}
