//! The cap on calls out and overload over a recording host: refusals whatever
//! failure_mode_allow says, calls of departed clients counted to their deadline,
//! Envoy's own overload answers, throttled warnings, and the gauges.

use super::mock::{Effect, Mock, Recorder};
use super::tests::{answer, error, shared, start, with, CONFIG};
use super::*;
use crate::config::Config;
use crate::pending::PendingCalls;
use crate::shared::Metric;
use std::cell::RefCell;

fn warns(effects: &[Effect]) -> Vec<&str> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Warn(line) => Some(line.as_str()),
            _ => None,
        })
        .collect()
}

fn capped(cap: usize, allow: bool) -> Shared {
    shared(&with(&format!(
        "\"max_pending_calls\": {cap}, \"failure_mode_allow\": {allow}"
    )))
}

#[test]
fn beyond_the_cap_requests_are_refused_whatever_failure_mode_allow_says() {
    for allow in [false, true] {
        let sh = capped(2, allow);
        let mut host = Mock::new();
        let (mut a, _) = start(&sh, &mut host, "Bearer a");
        let (_b, _) = start(&sh, &mut host, "Bearer b");
        assert_eq!(host.calls(), 2);
        host.take();
        let (stream, action) = start(&sh, &mut host, "Bearer c");
        assert_eq!(action, Action::Pause, "allow={allow}");
        assert!(!stream.waiting());
        let effects = host.take();
        assert_eq!(
            warns(&effects),
            [
                "#7 auth call to cluster 'outbound|8000||auth.ns.svc.cluster.local' failed: \
              not sent: 2 calls are out, the max_pending_calls cap; answered 403 \
              (overload never fails open)"
            ],
            "allow={allow}"
        );
        assert_eq!(
            effects[1..],
            [error(403, "dispatch_auth_overloaded")],
            "no call, no marker"
        );
        // An answer frees a place.
        answer(&mut a, &sh, &mut host, &[(":status", "200")], "");
        host.take();
        let (stream, _) = start(&sh, &mut host, "Bearer d");
        assert!(stream.waiting(), "allow={allow}");
        assert_eq!(sh.pending_calls(), 2);
    }
}

#[test]
fn a_call_whose_client_left_counts_until_its_deadline() {
    let sh = capped(1, true);
    let mut host = Mock::new();
    let t0 = host.now;
    // The client hangs up: the stream goes, its answer will never be seen.
    let _ = start(&sh, &mut host, "Bearer a");
    let deadline = t0 + 300 + crate::pending::GRACE_MS;
    host.now = deadline - 1;
    let (refused, _) = start(&sh, &mut host, "Bearer b");
    assert!(!refused.waiting());
    host.now = deadline;
    host.take();
    let (admitted, _) = start(&sh, &mut host, "Bearer b");
    assert!(admitted.waiting());
    assert_eq!(host.calls(), 1);
    assert_eq!(sh.pending_calls(), 1);
}

#[test]
fn an_answer_after_the_deadline_frees_nothing_twice() {
    let sh = capped(2, false);
    let mut host = Mock::new();
    let (mut late, _) = start(&sh, &mut host, "Bearer a");
    host.now += 300 + crate::pending::GRACE_MS;
    let (_fresh, _) = start(&sh, &mut host, "Bearer b");
    assert_eq!(sh.pending_calls(), 1, "the first expired");
    answer(&mut late, &sh, &mut host, &[(":status", "200")], "");
    assert_eq!(sh.pending_calls(), 1, "its late answer takes nothing away");
}

#[test]
fn envoys_overload_answers_never_fail_open() {
    for allow in [false, true] {
        // Envoy would not start the call: its circuit breaker is full.
        let sh = capped(100, allow);
        let mut host = Mock::new();
        host.refuse = Some(Failure::Overloaded(Overload::Refused));
        let (_, action) = start(&sh, &mut host, "Bearer a");
        assert_eq!(action, Action::Pause);
        let effects = host.take();
        assert!(
            warns(&effects)[0].contains("InternalFailure"),
            "{effects:?}"
        );
        assert_eq!(effects[1..], [error(403, "dispatch_auth_overloaded")]);
        // The call was queued, then Envoy answered it with its overflow reply.
        let sh = capped(100, allow);
        let mut host = Mock::new();
        let (mut stream, _) = start(&sh, &mut host, "Bearer a");
        host.take();
        answer(
            &mut stream,
            &sh,
            &mut host,
            &[(":status", "503"), ("x-envoy-overloaded", "true")],
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        );
        let effects = host.take();
        assert!(
            warns(&effects)[0].contains("x-envoy-overloaded"),
            "{effects:?}"
        );
        assert_eq!(
            effects[1..],
            [error(403, "dispatch_auth_overloaded")],
            "allow={allow}: no resume"
        );
        assert_eq!(sh.pending_calls(), 0);
    }
}

#[test]
fn overload_warnings_come_at_most_once_a_second() {
    // A call that stays out for the whole test.
    let sh = shared(
        &with("\"max_pending_calls\": 1").replace("\"timeout_ms\": 300", "\"timeout_ms\": 5000"),
    );
    let mut host = Mock::new();
    let (_out, _) = start(&sh, &mut host, "Bearer a");
    host.take();
    for _ in 0..5 {
        host.now += 10;
        start(&sh, &mut host, "Bearer b");
    }
    let effects = host.take();
    assert_eq!(warns(&effects).len(), 1, "{effects:?}");
    assert_eq!(
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Respond(403, ..)))
            .count(),
        5,
        "every one is answered"
    );
    host.now += 1000;
    start(&sh, &mut host, "Bearer b");
    let effects = host.take();
    let lines = warns(&effects);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with("(overload never fails open); 4 more since the last such line"),
        "{}",
        lines[0]
    );
    // Other failures are not throttled.
    let sh = shared(CONFIG);
    for _ in 0..3 {
        let (mut s, _) = start(&sh, &mut host, "Bearer a");
        answer(&mut s, &sh, &mut host, &[(":status", "500")], "");
    }
    assert_eq!(warns(&host.take()).len(), 3);
}

#[test]
fn instances_in_one_vm_share_the_count_of_their_cluster() {
    let calls = Rc::new(RefCell::new(PendingCalls::new()));
    let make = |cap: usize| {
        let config = Config::parse(with(&format!("\"max_pending_calls\": {cap}")).as_bytes());
        Shared::new(
            config.unwrap(),
            calls.clone(),
            Box::new(crate::shared::NoGauges),
        )
    };
    let (wide, narrow) = (make(3), make(1));
    let mut host = Mock::new();
    let (_a, _) = start(&wide, &mut host, "Bearer a");
    let (refused, _) = start(&narrow, &mut host, "Bearer b");
    assert!(!refused.waiting(), "the other instance's call counts");
    let (_c, _) = start(&wide, &mut host, "Bearer c");
    let (_d, _) = start(&wide, &mut host, "Bearer d");
    let (refused, _) = start(&wide, &mut host, "Bearer e");
    assert!(!refused.waiting());
    assert_eq!(calls.borrow().len(), 3);
}

#[test]
fn gauges_follow_the_cache_and_the_calls() {
    let recorder = Recorder::default();
    let config =
        Config::parse(with("\"max_pending_calls\": 5, \"cache\": {\"ttl_ms\": 1000}").as_bytes())
            .unwrap();
    let sh = Shared::new(config, Rc::default(), Box::new(recorder.clone()));
    let mut host = Mock::new();
    let (mut a, _) = start(&sh, &mut host, "Bearer a");
    let (_gone, _) = start(&sh, &mut host, "Bearer b");
    assert_eq!(recorder.get(Metric::PendingCalls), 2);
    answer(
        &mut a,
        &sh,
        &mut host,
        &[(":status", "401")],
        &"x".repeat(100),
    );
    assert_eq!(recorder.get(Metric::PendingCalls), 1);
    assert_eq!(recorder.get(Metric::CacheEntries), 1);
    let bytes = recorder.get(Metric::CacheBytes);
    assert_eq!(bytes, sh.cache_bytes() as i64);
    assert!(bytes > 100, "{bytes}");
    // The departed client's call expires when the next request looks.
    host.now += 300 + crate::pending::GRACE_MS;
    let (_c, _) = start(&sh, &mut host, "Bearer c");
    assert_eq!(recorder.get(Metric::PendingCalls), 1);
    assert_eq!(sh.pending_calls(), 1);
    // The cached entry expires when read after its TTL.
    host.now += 1000;
    let (_a2, _) = start(&sh, &mut host, "Bearer a");
    assert_eq!(recorder.get(Metric::CacheEntries), 0);
    assert_eq!(recorder.get(Metric::CacheBytes), 0);
    // A new configuration drops the instance and its cache with it.
    let (mut d, _) = start(&sh, &mut host, "Bearer d");
    answer(&mut d, &sh, &mut host, &[(":status", "200")], "");
    assert_eq!(recorder.get(Metric::CacheEntries), 1);
    drop(sh);
    assert_eq!(recorder.get(Metric::CacheEntries), 0);
    assert_eq!(recorder.get(Metric::CacheBytes), 0);
}
