//! The chain's semantics against scripted plugins on the recording host.

use super::testing::{Effect, Mock};
use super::*;
use serde_json::json;

/// A test plugin whose config scripts what each callback does.
struct Script;

#[derive(Default)]
struct Seen {
    requests: u32,
}

impl Plugin for Script {
    const NAME: &'static str = "script";
    type Config = (String, String);
    type Stream = Seen;
    const RESPONSE: bool = true;
    const CALLS: bool = true;

    fn configure(doc: &Value) -> Result<Self::Config, ConfigError> {
        let field = |k: &str| doc[k].as_str().unwrap_or("continue").to_string();
        Ok((field("request"), field("response")))
    }

    fn on_request_headers(config: &Self::Config, stream: &mut Seen, cx: &mut Cx<'_>) -> Step {
        stream.requests += 1;
        log::debug!("request");
        let _ = cx.host.add(Map::Request, "x-seen", b"1");
        match config.0.as_str() {
            "call" => match cx.host.dispatch("auth", &[], 100) {
                Ok(_) => Step::Pause,
                Err(_) => Step::Stop,
            },
            "deny" => {
                cx.host.send_response(403, "denied", &[], b"no\n");
                Step::Stop
            }
            _ => Step::Continue,
        }
    }

    fn on_response_headers(_: &Self::Config, stream: &mut Seen, cx: &mut Cx<'_>) -> Step {
        let n = stream.requests.to_string();
        let _ = cx.host.add(Map::Response, "x-saw", n.as_bytes());
        log::debug!("response");
        Step::Continue
    }

    fn on_call_response(
        _: &Self::Config,
        _: &mut Seen,
        cx: &mut Cx<'_>,
        call: CallResponse,
    ) -> Step {
        log::debug!("answer {}", call.token);
        if call.headers == 0 {
            cx.host.send_response(503, "failed", &[], b"");
            Step::Stop
        } else {
            Step::Continue
        }
    }
}

fn chain(scripts: &[(&str, &str)]) -> Chain {
    let instances: Vec<Box<dyn Instance>> = scripts
        .iter()
        .map(|(name, request)| {
            let doc = json!({"request": request});
            Box::new(Configured::<Script>::new(*name, &doc).unwrap()) as Box<dyn Instance>
        })
        .collect();
    Chain::new(Rc::new(instances))
}

fn logs(mock: &mut Mock) -> Vec<String> {
    std::mem::take(mock.effects())
        .into_iter()
        .filter_map(|e| match e {
            Effect::Log(_, line) => Some(line),
            _ => None,
        })
        .collect()
}

#[test]
fn requests_in_order_responses_in_reverse() {
    let mut c = chain(&[("a", "continue"), ("b", "continue"), ("c", "continue")]);
    let mut host = Mock::new();
    assert_eq!(c.on_request_headers(&mut host, 7), Step::Continue);
    assert_eq!(c.on_response_headers(&mut host, 7), Step::Continue);
    assert_eq!(
        logs(&mut host),
        [
            "a: request",
            "b: request",
            "c: request",
            "c: response",
            "b: response",
            "a: response"
        ]
    );
    assert_eq!(host.request_values("x-seen"), ["1", "1", "1"]);
}

/// A plugin without a response side (RESPONSE false), which logs if its
/// response callback is ever run.
struct RequestOnly;

impl Plugin for RequestOnly {
    const NAME: &'static str = "request-only";
    type Config = ();
    type Stream = ();

    fn configure(_: &Value) -> Result<(), ConfigError> {
        Ok(())
    }

    fn on_request_headers(_: &(), _: &mut (), _: &mut Cx<'_>) -> Step {
        log::debug!("request");
        Step::Continue
    }

    fn on_response_headers(_: &(), _: &mut (), _: &mut Cx<'_>) -> Step {
        log::debug!("response");
        Step::Continue
    }
}

#[test]
fn only_instances_with_a_response_side_see_responses_and_keep_the_stream() {
    let request_only = |name: &str| {
        Box::new(Configured::<RequestOnly>::new(name, &json!({})).unwrap()) as Box<dyn Instance>
    };
    let script = |name: &str, request: &str| {
        let doc = json!({ "request": request });
        Box::new(Configured::<Script>::new(name, &doc).unwrap()) as Box<dyn Instance>
    };
    let mut host = Mock::new();
    // Request-only instances that let the request on leave nothing to keep.
    let mut c = Chain::new(Rc::new(vec![request_only("a"), request_only("b")]));
    assert!(!c.keeps());
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Continue);
    assert!(!c.keeps());
    c.on_response_headers(&mut host, 1);
    assert_eq!(logs(&mut host), ["a: request", "b: request"]);
    // A response side among those that saw the request keeps it; one after a
    // reply does not.
    let mut c = Chain::new(Rc::new(vec![script("s", "continue"), request_only("r")]));
    assert_eq!(c.on_request_headers(&mut host, 2), Step::Continue);
    assert!(c.keeps());
    c.on_response_headers(&mut host, 2);
    assert_eq!(logs(&mut host), ["s: request", "r: request", "s: response"]);
    let mut c = Chain::new(Rc::new(vec![
        request_only("r"),
        script("d", "deny"),
        script("s", "continue"),
    ]));
    assert_eq!(c.on_request_headers(&mut host, 3), Step::Pause);
    assert!(c.keeps(), "the replying instance sees its reply");
    let mut c = Chain::new(Rc::new(vec![script("w", "call"), request_only("r")]));
    assert_eq!(c.on_request_headers(&mut host, 4), Step::Pause);
    assert!(c.keeps(), "waiting for a call");
}

#[test]
fn a_reply_stops_the_request_and_only_earlier_instances_and_the_sender_see_it() {
    let mut c = chain(&[("a", "continue"), ("b", "deny"), ("c", "continue")]);
    let mut host = Mock::new();
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
    assert!(!c.waiting());
    assert_eq!(c.on_response_headers(&mut host, 1), Step::Continue);
    assert_eq!(
        logs(&mut host),
        ["a: request", "b: request", "b: response", "a: response"]
    );
}

#[test]
fn a_call_pauses_the_chain_and_its_answer_resumes_it_at_the_next_instance() {
    let mut c = chain(&[("a", "continue"), ("b", "call"), ("c", "continue")]);
    let mut host = Mock::new();
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
    assert!(c.waiting());
    assert_eq!(logs(&mut host), ["a: request", "b: request"]);
    let answer = CallResponse {
        token: 1,
        headers: 3,
        body_size: 0,
    };
    assert_eq!(c.on_call_response(&mut host, 1, answer), Step::Continue);
    assert!(!c.waiting());
    assert_eq!(logs(&mut host), ["b: answer 1", "c: request"]);
    // A second answer (never expected) changes nothing.
    assert_eq!(c.on_call_response(&mut host, 1, answer), Step::Pause);
    assert!(logs(&mut host).is_empty());
    c.on_response_headers(&mut host, 1);
    assert_eq!(
        logs(&mut host),
        ["c: response", "b: response", "a: response"]
    );
}

#[test]
fn a_failed_call_replies_and_the_rest_never_run() {
    let mut c = chain(&[("a", "call"), ("b", "continue")]);
    let mut host = Mock::new();
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Pause);
    let failed = CallResponse {
        token: 1,
        headers: 0,
        body_size: 0,
    };
    assert_eq!(c.on_call_response(&mut host, 1, failed), Step::Pause);
    assert!(!c.waiting());
    c.on_response_headers(&mut host, 1);
    let effects = host.effects().to_vec();
    assert!(effects.contains(&Effect::Respond(
        503,
        "failed".into(),
        vec![],
        String::new()
    )));
    assert_eq!(
        logs(&mut host),
        ["a: request", "a: answer 1", "a: response"]
    );
}

#[test]
fn a_reply_from_an_earlier_filter_reaches_no_instance() {
    let mut c = chain(&[("a", "continue")]);
    let mut host = Mock::new();
    assert_eq!(c.on_response_headers(&mut host, 1), Step::Continue);
    assert!(logs(&mut host).is_empty());
    // Request headers arrive only once.
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Continue);
    assert_eq!(c.on_request_headers(&mut host, 1), Step::Continue);
    assert_eq!(logs(&mut host), ["a: request"]);
}

#[test]
fn the_request_headers_are_read_once_and_edits_are_carried_into_them() {
    // Every Script instance reads nothing but adds x-seen: three reads then.
    let mut c = chain(&[("a", "continue"), ("b", "continue")]);
    let mut host = Mock::new();
    c.on_request_headers(&mut host, 1);
    assert_eq!(host.header_reads(), 0);
    struct Reader;
    impl Plugin for Reader {
        const NAME: &'static str = "reader";
        type Config = bool;
        type Stream = ();
        fn configure(doc: &Value) -> Result<bool, ConfigError> {
            Ok(doc.as_bool().unwrap_or(false))
        }
        fn on_request_headers(edits: &bool, _: &mut (), cx: &mut Cx<'_>) -> Step {
            let seen = cx.host.request_headers().values("x-n").count().to_string();
            log::debug!("{seen}");
            if *edits {
                cx.host.add(Map::Request, "x-n", b"1");
            }
            Step::Continue
        }
    }
    let make = |edits: bool, name: &str| -> Box<dyn Instance> {
        Box::new(Configured::<Reader>::new(name, &json!(edits)).unwrap())
    };
    let instances = vec![
        make(false, "a"),
        make(false, "b"),
        make(true, "c"),
        make(false, "d"),
    ];
    let mut c = Chain::new(Rc::new(instances));
    let mut host = Mock::new();
    c.on_request_headers(&mut host, 1);
    // One read for all: c's edit is carried into the kept map, and d sees it.
    assert_eq!(host.header_reads(), 1);
    assert_eq!(logs(&mut host), ["a: 0", "b: 0", "c: 0", "d: 1"]);
}

#[test]
fn a_plugin_on_its_own_logs_without_a_prefix() {
    let mut c = chain(&[("", "continue")]);
    let mut host = Mock::new();
    c.on_request_headers(&mut host, 1);
    assert_eq!(logs(&mut host), ["request"]);
}
