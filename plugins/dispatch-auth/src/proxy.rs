//! The [`Host`] the flow runs on inside Envoy: proxy-wasm host calls made
//! directly where the SDK would panic on an unexpected status or insist on UTF-8
//! values, so a request in flight can never take the VM down.

use crate::flow::Host;
use crate::shared::{Gauges, Metric};
use crate::verdict::{Failure, Overload};
use common::host::{self, Gauge, HostHeaders};
use proxy_wasm::types::{BufferType, Status, StreamType};
use std::fmt;
use std::time::Duration;

// Statuses are read as plain integers: a value the SDK's enum lacks must not
// become an invalid enum.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_continue_stream(stream_type: StreamType) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
}

/// The proxy-wasm host, for the stream whose callback is running.
pub struct Envoy;

impl Host for Envoy {
    fn now_ms(&self) -> u64 {
        let mut nanos: u64 = 0;
        // SAFETY: the host writes one u64 through a pointer to a live local.
        let _ = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
        nanos / 1_000_000
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: Vec<(&str, &str)>,
        timeout_ms: u64,
    ) -> Result<u32, Failure> {
        // The SDK's call is the only one that registers the callout, so that the
        // answer reaches this stream. Envoy answers an unknown cluster or missing
        // pseudo-headers with BadArgument, and a call that fails as it is made
        // with InternalFailure: in Envoy 1.40 that is a circuit breaker that
        // overflows (max_requests, max_pending_requests) or a cluster without a
        // healthy host. The statuses the SDK panics on are not among what Envoy's
        // http_call returns.
        proxy_wasm::hostcalls::dispatch_http_call(
            cluster,
            headers,
            None,
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .map_err(|status| match status {
            Status::BadArgument => {
                Failure::Dispatch("unknown cluster or invalid call headers (BadArgument)")
            }
            Status::InternalFailure => Failure::Overloaded(Overload::Refused),
            _ => Failure::Dispatch("unexpected host status"),
        })
    }

    fn set_request_header(&mut self, name: &str, value: Option<&[u8]>) -> bool {
        match value {
            Some(v) => HostHeaders::REQUEST.replace(name, v),
            None => HostHeaders::REQUEST.remove(name),
        }
    }

    fn add_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        HostHeaders::REQUEST.add(name, value)
    }

    fn send_response(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) {
        host::send_response(status, details, headers, body);
    }

    fn resume_request(&mut self) {
        // SAFETY: no pointers.
        let _ = unsafe { proxy_continue_stream(StreamType::HttpRequest) };
    }

    fn debug(&mut self, message: fmt::Arguments<'_>) {
        host::debug(message);
    }

    fn warn(&mut self, message: fmt::Arguments<'_>) {
        host::warn(message);
    }
}

/// The body of the current call response, up to `size` bytes.
pub fn call_response_body(size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: on success the host hands over a buffer of `len` bytes allocated
    // through the SDK's `proxy_on_memory_allocate`, which we now own (the SDK's
    // `get_buffer` takes it over the same way).
    unsafe {
        match proxy_get_buffer_bytes(
            BufferType::HttpCallResponseBody,
            0,
            size,
            &mut data,
            &mut len,
        ) {
            0 if !data.is_null() => Vec::from_raw_parts(data, len, len),
            _ => Vec::new(),
        }
    }
}

/// The plugin's gauges in Envoy's stats, `wasmcustom.dispatch-auth.<metric>`.
pub struct EnvoyGauges([Gauge; 3]);

impl EnvoyGauges {
    /// Defines (or finds again: Envoy keys stats by name) every gauge.
    pub fn define() -> Self {
        EnvoyGauges(Metric::ALL.map(|m| {
            Gauge::define(&format!(
                "{}.{}",
                <crate::DispatchAuth as common::host::Plugin>::NAME,
                m.name()
            ))
        }))
    }
}

impl Gauges for EnvoyGauges {
    fn add(&self, metric: Metric, delta: i64) {
        if let Some(gauge) = self.0.get(metric as usize) {
            gauge.add(delta);
        }
    }
}
