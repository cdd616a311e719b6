//! [`Chain`]: one stream's way through a filter's instances, with the semantics
//! of separate Envoy filters.

use super::*;

/// The instances of one filter, in request order.
pub type Instances = Rc<Vec<Box<dyn Instance>>>;

/// One stream's way through a list of instances, with the semantics of separate
/// Envoy filters: requests run the instances in order; an instance that pauses
/// holds the rest until its call is answered; a local reply stops the request
/// side, and the response side (the local reply's included) runs in reverse over
/// the instances that saw the request, the one that replied among them.
pub struct Chain {
    instances: Instances,
    streams: Vec<Box<dyn Any>>,
    /// The request headers as last read, shared by the instances until one edits
    /// them: a chain of several plugins reads the map from the host once.
    request: Option<Rc<HeaderMap>>,
    /// The instance the request side is at: waiting for its call, or the one
    /// that replied; `instances.len()` once every instance let the request on.
    at: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Waiting,
    Replied,
    Passed,
}

impl Chain {
    pub fn new(instances: Instances) -> Self {
        let streams = instances.iter().map(|i| i.new_stream()).collect();
        Chain {
            instances,
            streams,
            request: None,
            at: 0,
            state: State::Start,
        }
    }

    /// Whether the stream still has something to do after its request headers:
    /// an instance waits for its call, or one that saw the request acts on
    /// responses. Otherwise the adapter need not keep it.
    pub fn keeps(&self) -> bool {
        let seen = match self.state {
            State::Start => 0,
            State::Passed => self.instances.len(),
            State::Waiting => return true,
            State::Replied => self.at.saturating_add(1),
        };
        self.instances.iter().take(seen).any(|i| i.response())
    }

    /// True while an instance waits for its call: request body and trailers are
    /// held, since Envoy lets a Continue from a later callback resume a stream
    /// stopped at its headers.
    pub fn waiting(&self) -> bool {
        self.state == State::Waiting
    }

    /// The request headers: runs the instances from the first. `Continue` lets
    /// the request on; `Pause` holds it (waiting, or replied).
    pub fn on_request_headers(&mut self, host: &mut dyn Host, id: u32) -> Step {
        if self.state != State::Start {
            return Step::Continue;
        }
        self.run_request(0, host, id)
    }

    /// The answer to the waiting instance's call. `Continue` means the request
    /// may now go on (the caller resumes it); otherwise it stays held.
    pub fn on_call_response(&mut self, host: &mut dyn Host, id: u32, call: CallResponse) -> Step {
        self.resume_waiting(host, id, |instance, stream, cx| {
            instance.on_call_response(stream, cx, call)
        })
    }

    /// Another stream woke this one: the waiting instance's `on_wake` runs, and
    /// the answer means what [`Chain::on_call_response`]'s does.
    pub fn on_wake(&mut self, host: &mut dyn Host, id: u32) -> Step {
        self.resume_waiting(host, id, |instance, stream, cx| {
            instance.on_wake(stream, cx)
        })
    }

    fn resume_waiting(
        &mut self,
        host: &mut dyn Host,
        id: u32,
        f: impl FnOnce(&dyn Instance, &mut dyn Any, &mut Cx<'_>) -> Step,
    ) -> Step {
        if self.state != State::Waiting {
            return Step::Pause;
        }
        let at = self.at;
        let instances = self.instances.clone();
        let (Some(instance), Some(stream)) = (instances.get(at), self.streams.get_mut(at)) else {
            return Step::Pause;
        };
        let mut cached = Cached {
            host: &mut *host,
            request: &mut self.request,
        };
        let mut cx = Cx::new(&mut cached, id);
        let step = with_label(instance.label(), || {
            f(instance.as_ref(), stream.as_mut(), &mut cx)
        });
        match step {
            Step::Continue => self.run_request(at + 1, host, id),
            Step::Pause => Step::Pause,
            Step::Stop => {
                self.state = State::Replied;
                Step::Pause
            }
        }
    }

    fn run_request(&mut self, from: usize, host: &mut dyn Host, id: u32) -> Step {
        let instances = self.instances.clone();
        for (at, instance) in instances.iter().enumerate().skip(from) {
            let Some(stream) = self.streams.get_mut(at) else {
                break;
            };
            self.at = at;
            let mut cached = Cached {
                host: &mut *host,
                request: &mut self.request,
            };
            let mut cx = Cx::new(&mut cached, id);
            let step = with_label(instance.label(), || {
                instance.on_request_headers(stream.as_mut(), &mut cx)
            });
            match step {
                Step::Continue => {}
                Step::Pause => {
                    self.state = State::Waiting;
                    return Step::Pause;
                }
                Step::Stop => {
                    self.state = State::Replied;
                    return Step::Pause;
                }
            }
        }
        self.at = instances.len();
        self.state = State::Passed;
        Step::Continue
    }

    /// The response headers (the upstream's, or a local reply's): the instances
    /// that saw the request, last first.
    pub fn on_response_headers(&mut self, host: &mut dyn Host, id: u32) -> Step {
        let seen = match self.state {
            State::Passed => self.instances.len(),
            State::Replied | State::Waiting => self.at + 1,
            // A reply before the request reached this filter (an earlier filter's
            // local reply): none of these instances saw the request.
            State::Start => 0,
        };
        let instances = self.instances.clone();
        for at in (0..seen.min(instances.len())).rev() {
            let (Some(instance), Some(stream)) = (instances.get(at), self.streams.get_mut(at))
            else {
                continue;
            };
            if !instance.response() {
                continue;
            }
            let mut cx = Cx::new(host, id);
            let step = with_label(instance.label(), || {
                instance.on_response_headers(stream.as_mut(), &mut cx)
            });
            if step == Step::Stop {
                return Step::Pause;
            }
        }
        Step::Continue
    }
}

/// The stream's host with its request headers read once: an edit the host
/// accepts is carried into the kept map as Envoy carries it out, so a later
/// instance sees it without reading the map again (a host call, and a call back
/// into the VM for the buffer: most of what reading headers costs).
struct Cached<'a> {
    host: &'a mut dyn Host,
    request: &'a mut Option<Rc<HeaderMap>>,
}

impl Cached<'_> {
    fn edited(
        &mut self,
        map: Map,
        accepted: bool,
        name: &str,
        value: Option<&[u8]>,
        keep_others: bool,
    ) -> bool {
        if map == Map::Request {
            match (accepted, self.request.as_ref()) {
                (true, Some(kept)) => {
                    *self.request = Some(Rc::new(kept.edited(name, value, keep_others)));
                }
                // A refused edit may have done part of its work: read again.
                _ => *self.request = None,
            }
        }
        accepted
    }
}

impl Host for Cached<'_> {
    fn request_headers(&mut self) -> Rc<HeaderMap> {
        match self.request {
            Some(map) => map.clone(),
            None => self.request.insert(self.host.request_headers()).clone(),
        }
    }

    fn contains(&mut self, map: Map, name: &str) -> bool {
        self.host.contains(map, name)
    }

    fn add(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        let accepted = self.host.add(map, name, value);
        self.edited(map, accepted, name, Some(value), true)
    }

    fn replace(&mut self, map: Map, name: &str, value: &[u8]) -> bool {
        let accepted = self.host.replace(map, name, value);
        self.edited(map, accepted, name, Some(value), false)
    }

    fn remove(&mut self, map: Map, name: &str) -> bool {
        let accepted = self.host.remove(map, name);
        self.edited(map, accepted, name, None, false)
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        self.host.send_response(status, details, headers, body);
    }

    fn send_deny(&mut self, deny: &DenyResponse) {
        self.host.send_deny(deny);
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError> {
        self.host.dispatch(cluster, headers, timeout_ms)
    }

    fn await_wake(&mut self) {
        self.host.await_wake();
    }

    fn call_response_headers(&mut self) -> HeaderMap {
        self.host.call_response_headers()
    }

    fn call_response_body(&mut self, size: usize) -> Vec<u8> {
        self.host.call_response_body(size)
    }

    fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }
}
