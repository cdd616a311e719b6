//! A host that records what plugins do, for native tests of plugins and chains.
//! Log lines (the `log` macros, captured per thread by `logger`) are taken into
//! the effects at each host call and whenever the effects are read, so they stay
//! in order with what the plugin did. With two mocks on one thread, a line goes
//! to the one whose host call or read comes next.

use super::*;
use crate::headers::serialize;
use crate::logger;
use log::Level;

/// One thing a plugin did through the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Add(Map, String, String),
    Replace(Map, String, String),
    Remove(Map, String),
    Respond(u32, String, Vec<(String, String)>, String),
    Dispatch(String, Vec<(String, String)>, u64),
    Log(Level, String),
}

/// A recording host with request and response headers held as lists.
#[derive(Debug, Default)]
pub struct Mock {
    pub request: Vec<(String, Vec<u8>)>,
    pub response: Vec<(String, Vec<u8>)>,
    pub call_headers: Vec<(String, Vec<u8>)>,
    pub call_body: Vec<u8>,
    pub now: u64,
    /// What `dispatch` answers; `Ok` tokens count up from 1.
    pub refuse_dispatch: Option<DispatchError>,
    /// Refuse every header edit, as a host without the map would.
    pub refuse_edits: bool,
    /// The stream asked to be woken (`await_wake`).
    pub awaiting: bool,
    effects: Vec<Effect>,
    tokens: u32,
    reads: usize,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Mock {
    /// Installs the capturing logger. Lines are not dropped here: a line logged
    /// after another mock's last host call still reaches that mock when read.
    pub fn new() -> Self {
        logger::capture();
        Mock {
            now: 1_000_000,
            ..Default::default()
        }
    }

    /// A mock whose request carries these headers.
    pub fn with_request(headers: &[(&str, &str)]) -> Self {
        let mut mock = Mock::new();
        mock.request = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        mock
    }

    /// Everything recorded so far, log lines included.
    pub fn effects(&mut self) -> &mut Vec<Effect> {
        self.logged();
        &mut self.effects
    }

    /// Moves the lines logged since the last host call into the effects.
    fn logged(&mut self) {
        let lines = logger::take_captured();
        self.effects.extend(
            lines
                .into_iter()
                .map(|(level, line)| Effect::Log(level, line)),
        );
    }

    /// Effects other than logs at debug, drained.
    pub fn take(&mut self) -> Vec<Effect> {
        std::mem::take(self.effects())
            .into_iter()
            .filter(|e| !matches!(e, Effect::Log(Level::Debug, _)))
            .collect()
    }

    /// How often the request headers were read from the "host".
    pub fn header_reads(&self) -> usize {
        self.reads
    }

    /// Values of request header `name`, in order.
    pub fn request_values(&self, name: &str) -> Vec<String> {
        self.request
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| text(v))
            .collect()
    }

    fn map(&mut self, map: Map) -> &mut Vec<(String, Vec<u8>)> {
        match map {
            Map::Request => &mut self.request,
            Map::Response => &mut self.response,
        }
    }
}

fn to_map(list: &[(String, Vec<u8>)]) -> HeaderMap {
    let pairs: Vec<(&str, &[u8])> = list
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    HeaderMap::from_buf(serialize(&pairs))
}

impl Host for Mock {
    fn request_headers(&mut self) -> Rc<HeaderMap> {
        self.reads += 1;
        Rc::new(to_map(&self.request))
    }

    fn contains(&mut self, map: Map, name: &str) -> bool {
        self.map(map).iter().any(|(n, _)| n == name)
    }

    fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        self.logged();
        self.effects
            .push(Effect::Add(map, name.into(), text(value)));
        if self.refuse_edits {
            return false;
        }
        self.map(map).push((name.into(), value.to_vec()));
        true
    }

    fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        self.logged();
        self.effects
            .push(Effect::Replace(map, name.into(), text(value)));
        if self.refuse_edits {
            return false;
        }
        let list = self.map(map);
        list.retain(|(n, _)| n != name);
        list.push((name.into(), value.to_vec()));
        true
    }

    fn remove(&mut self, map: Map, name: &str) -> bool {
        self.logged();
        self.effects.push(Effect::Remove(map, name.into()));
        if self.refuse_edits {
            return false;
        }
        self.map(map).retain(|(n, _)| n != name);
        true
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), text(v)))
            .collect();
        self.logged();
        self.effects
            .push(Effect::Respond(status, details.into(), headers, text(body)));
    }

    fn send_deny(&mut self, deny: &DenyResponse) {
        let headers = deny
            .headers()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        self.logged();
        self.effects.push(Effect::Respond(
            deny.status(),
            String::new(),
            headers,
            deny.body().to_string(),
        ));
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError> {
        if let Some(e) = self.refuse_dispatch {
            return Err(e);
        }
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.logged();
        self.effects
            .push(Effect::Dispatch(cluster.into(), headers, timeout_ms));
        self.tokens += 1;
        Ok(self.tokens)
    }

    fn await_wake(&mut self) {
        self.awaiting = true;
    }

    fn call_response_headers(&mut self) -> HeaderMap {
        to_map(&self.call_headers)
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        self.call_body.iter().copied().take(size).collect()
    }

    fn now_ms(&self) -> u64 {
        self.now
    }
}
