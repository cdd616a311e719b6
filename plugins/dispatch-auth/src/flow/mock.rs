//! A recording [`Host`] and [`Gauges`] for the flow's tests: every effect the flow
//! asks for is kept in order, and the host can be told to refuse the call or
//! every header edit. The flow's log lines (captured per thread by
//! `common::logger`) join the effects at each host call and when they are taken.

use super::Host;
use crate::shared::{Gauges, Metric};
use crate::verdict::Failure;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Dispatch(String, Vec<(String, String)>, u64),
    Set(String, Option<String>),
    Add(String, String),
    Respond(u32, String, Vec<(String, String)>, String),
    Resume,
    Debug(String),
    Warn(String),
    /// A line at another level (the flow logs at debug and warn).
    Log(log::Level, String),
}

pub struct Mock {
    pub now: u64,
    /// Refuse the call with this failure.
    pub refuse: Option<Failure>,
    /// Refuse every request-header change, as a host without the map would.
    pub refuse_edits: bool,
    pub effects: Vec<Effect>,
    /// The body of the call response being delivered; `None` fails the test if
    /// the flow reads it.
    pub call_body: Option<Vec<u8>>,
    next_token: u32,
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Host for Mock {
    fn now_ms(&self) -> u64 {
        self.now
    }
    fn dispatch(
        &mut self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        timeout_ms: u64,
    ) -> Result<u32, Failure> {
        if let Some(failure) = &self.refuse {
            return Err(failure.clone());
        }
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.logged();
        self.effects
            .push(Effect::Dispatch(cluster.into(), headers, timeout_ms));
        self.next_token += 1;
        Ok(self.next_token)
    }
    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> bool {
        self.logged();
        self.effects.push(Effect::Set(name.into(), value.map(s)));
        !self.refuse_edits
    }
    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.logged();
        self.effects.push(Effect::Add(name.into(), s(value)));
        !self.refuse_edits
    }
    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        let headers = headers.iter().map(|(n, v)| (n.to_string(), s(v))).collect();
        self.logged();
        self.effects
            .push(Effect::Respond(status, details.into(), headers, s(body)));
    }
    fn resume_request(&mut self) {
        self.logged();
        self.effects.push(Effect::Resume);
    }
    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        let body = self
            .call_body
            .take()
            .expect("the flow read the call's body");
        assert_eq!(body.len(), size, "the body's size as delivered");
        body
    }
}

impl Mock {
    pub fn new() -> Self {
        common::logger::capture();
        Mock {
            now: 1_000_000,
            refuse: None,
            refuse_edits: false,
            effects: Vec::new(),
            call_body: None,
            next_token: 0,
        }
    }
    /// Effects other than debug logs, drained.
    pub fn take(&mut self) -> Vec<Effect> {
        self.logged();
        std::mem::take(&mut self.effects)
            .into_iter()
            .filter(|e| !matches!(e, Effect::Debug(_)))
            .collect()
    }
    /// Moves the lines logged since the last host call into the effects.
    fn logged(&mut self) {
        for (level, line) in common::logger::take_captured() {
            self.logged();
            self.effects.push(match level {
                log::Level::Debug => Effect::Debug(line),
                log::Level::Warn => Effect::Warn(line),
                other => Effect::Log(other, line),
            });
        }
    }
    /// Calls made, over the effects not yet taken.
    pub fn calls(&self) -> usize {
        self.effects
            .iter()
            .filter(|e| matches!(e, Effect::Dispatch(..)))
            .count()
    }
}

/// Gauges summed by metric, shared with the test that reads them.
#[derive(Clone, Default)]
pub struct Recorder(pub Rc<RefCell<HashMap<Metric, i64>>>);

impl Recorder {
    pub fn get(&self, metric: Metric) -> i64 {
        self.0.borrow().get(&metric).copied().unwrap_or(0)
    }
}

impl Gauges for Recorder {
    fn add(&self, metric: Metric, delta: i64) {
        assert_ne!(delta, 0, "{metric:?}: a zero change costs a host call");
        *self.0.borrow_mut().entry(metric).or_insert(0) += delta;
        assert!(self.get(metric) >= 0, "{metric:?} went below zero");
    }
}
