//! The proxy-wasm host calls, made panic-free: level-checked logging (under
//! `logger`, which the `log` macros go through), header map
//! reads and edits, local replies, the auth call and its answer, the clock, and
//! gauges in Envoy's stats. Only `adapter` and the wasm adapters call into this
//! module; plugin logic sees the host through `plugin::Host`.

use crate::abi::*;
pub use crate::abi::{Action, LogLevel, MapType};
use crate::deny::DenyResponse;
use crate::headers::{serialize, HeaderMap};
use crate::plugin::DispatchError;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

// The host's log level, read at configure time so that a disabled level costs one
// comparison and no formatting. Each VM is single-threaded; Relaxed is enough.
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// Reads the host's log level again and returns it (the last one read when the
/// host does not answer).
pub(crate) fn refresh_log_level() -> u32 {
    let mut level: u32 = 0;
    // SAFETY: the host writes one u32 through a pointer to a live local. Read as
    // an integer: Envoy reports `off` as 6, which the SDK's `LogLevel` lacks.
    if unsafe { proxy_get_log_level(&mut level) } == OK {
        LEVEL.store(level.min(u32::from(u8::MAX)) as u8, Ordering::Relaxed);
    }
    u32::from(LEVEL.load(Ordering::Relaxed))
}

/// True when the host would keep a message at `level`.
pub fn log_enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Logs `message` at `level`; formats nothing when the level is disabled, and
/// allocates nothing for a message without arguments.
pub fn log(level: LogLevel, message: fmt::Arguments<'_>) {
    if !log_enabled(level) {
        return;
    }
    match message.as_str() {
        Some(constant) => log_str(level, constant),
        None => log_str(level, &message.to_string()),
    }
}

/// Logs `text` at `level` when the host keeps that level.
pub fn log_str(level: LogLevel, text: &str) {
    if !log_enabled(level) {
        return;
    }
    // SAFETY: the slice is valid for the duration of the call.
    let _ = unsafe { proxy_log(level as u32, text.as_ptr(), text.len()) };
}

type WriteCall = unsafe extern "C" fn(MapType, *const u8, usize, *const u8, usize) -> u32;

/// Panic-free edits of one of the current stream's header maps. Each call says
/// whether the host accepted it (it refuses, for example, a map that is no longer
/// available in this phase); the caller decides whether that fails closed.
#[derive(Debug, Clone, Copy)]
pub struct HostHeaders(pub MapType);

impl HostHeaders {
    pub const REQUEST: HostHeaders = HostHeaders(MapType::HttpRequestHeaders);
    pub const RESPONSE: HostHeaders = HostHeaders(MapType::HttpResponseHeaders);

    /// Whether `name` has at least one value.
    pub fn contains(self, name: &str) -> bool {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the pointers are valid for the call. On success the host hands
        // over a buffer it allocated through `proxy_on_memory_allocate` ([`allocate`]: a
        // boxed slice of exactly `size` bytes); rebuilding it as a Vec frees it.
        unsafe {
            let status =
                proxy_get_header_map_value(self.0, name.as_ptr(), name.len(), &mut data, &mut size);
            if !data.is_null() {
                drop(Vec::from_raw_parts(data, size, size));
            }
            status == OK
        }
    }

    /// Adds one more value of `name`, keeping existing ones.
    pub fn add(self, name: &str, value: &[u8]) -> bool {
        self.write(proxy_add_header_map_value, name, value)
    }

    /// Replaces every value of `name` with `value` (adds it when absent).
    pub fn replace(self, name: &str, value: &[u8]) -> bool {
        self.write(proxy_replace_header_map_value, name, value)
    }

    /// `add` and `replace` take the same arguments; only the host call differs.
    fn write(self, call: WriteCall, name: &str, value: &[u8]) -> bool {
        // SAFETY: both slices are valid for the duration of the call.
        let status = unsafe {
            call(
                self.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
        status == OK
    }

    /// Removes every value of `name`.
    pub fn remove(self, name: &str) -> bool {
        // SAFETY: the slice is valid for the duration of the call.
        let status = unsafe { proxy_remove_header_map_value(self.0, name.as_ptr(), name.len()) };
        status == OK
    }
}

/// Wall-clock time in milliseconds.
pub fn now_ms() -> u64 {
    let mut nanos: u64 = 0;
    // SAFETY: the host writes one u64 through a pointer to a live local.
    let _ = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    nanos / 1_000_000
}

/// Makes the stream `context_id` the one later host calls act on (resuming it,
/// replying to it), in a callback Envoy delivers to the root context: a call's
/// answer. Returns whether the host knows that context.
pub fn set_effective_context(context_id: u32) -> bool {
    // SAFETY: no pointers.
    unsafe { proxy_set_effective_context(context_id) == OK }
}

/// Lets a request held at its headers continue.
pub fn resume_request() {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_continue_stream(StreamType::HttpRequest) };
}

/// Starts an HTTP call to `cluster` with `headers` (which must hold `:method`,
/// `:path` and `:authority`) and no body. Envoy answers an unknown cluster or
/// missing pseudo-headers with BadArgument, and a call that fails as it is made
/// with InternalFailure (in Envoy 1.40: a circuit breaker that overflows, or a
/// cluster without a healthy host). The answer reaches the calling stream's
/// context (`proxy_on_http_call_response` with its id).
pub fn dispatch(
    cluster: &str,
    headers: &[(&str, &str)],
    timeout_ms: u64,
) -> Result<u32, DispatchError> {
    let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let wire = serialize(&pairs);
    let mut token: u32 = 0;
    let timeout = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    // SAFETY: every pointer and length describes a live slice for the call, and
    // the token is written through a pointer to a live local.
    let status = unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            wire.as_ptr(),
            wire.len(),
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
            timeout,
            &mut token,
        )
    };
    match status {
        OK => Ok(token),
        BAD_ARGUMENT => Err(DispatchError::BadArgument),
        INTERNAL_FAILURE => Err(DispatchError::InternalFailure),
        other => Err(DispatchError::Other(other)),
    }
}

/// The filter's configuration (`pluginConfig`), `size` bytes as the host announced.
pub fn plugin_configuration(size: usize) -> Vec<u8> {
    buffer(BufferType::PluginConfiguration, size)
}

/// The body of the call response being delivered, up to `size` bytes.
pub fn call_response_body(size: usize) -> Vec<u8> {
    buffer(BufferType::HttpCallResponseBody, size)
}

fn buffer(buffer_type: BufferType, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: on success the host hands over a buffer of `len` bytes allocated
    // through `proxy_on_memory_allocate` ([`allocate`]), which we now own.
    unsafe {
        match proxy_get_buffer_bytes(buffer_type, 0, size, &mut data, &mut len) {
            OK if !data.is_null() => Vec::from_raw_parts(data, len, len),
            _ => Vec::new(),
        }
    }
}

/// What the module exports as `proxy_on_memory_allocate`: the host puts the data
/// it returns (header maps, buffers) in memory it asks for here, and the calls
/// above take that memory over as a `Vec` of exactly `size` bytes.
pub fn allocate(size: usize) -> *mut u8 {
    let mut memory: Vec<std::mem::MaybeUninit<u8>> = Vec::with_capacity(size);
    // SAFETY: the bytes are uninitialized `MaybeUninit`s, which is valid, and the
    // capacity is exactly `size`, so the boxed slice keeps this allocation.
    unsafe { memory.set_len(size) };
    Box::into_raw(memory.into_boxed_slice()) as *mut u8
}

/// Copies one of the stream's header maps out of the host in one call: one buffer,
/// no allocation per header, and no panic on a value that is not UTF-8.
pub fn read_map(map_type: MapType) -> HeaderMap {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host hands us a buffer it allocated through
    // `proxy_on_memory_allocate` ([`allocate`]: a boxed slice of exactly `size` bytes),
    // which we now own.
    let buf = unsafe {
        match proxy_get_header_map_pairs(map_type, &mut data, &mut size) {
            OK if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    };
    HeaderMap::from_buf(buf)
}

/// Answers the request with `deny` instead of forwarding it. The caller must then
/// return `Action::Pause` (rust-sdk#105).
pub fn send_deny(deny: &DenyResponse) {
    send_local(
        deny.status(),
        "",
        deny.wire_headers(),
        deny.body().as_bytes(),
    );
}

/// Sends a local reply; `details` becomes Envoy's response code details (shown in
/// access logs as `%RESPONSE_CODE_DETAILS%`). Returns whether the host accepted it.
pub fn send_response(status: u32, details: &str, headers: &[(&str, &[u8])], body: &[u8]) -> bool {
    send_local(status, details, &serialize(headers), body)
}

fn send_local(status: u32, details: &str, wire_headers: &[u8], body: &[u8]) -> bool {
    // SAFETY: every pointer and length describes a live slice for the call; -1
    // means "no gRPC status".
    let status = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            wire_headers.as_ptr(),
            wire_headers.len(),
            -1,
        )
    };
    status == OK
}

/// A gauge in Envoy's stats, shown by the admin `/stats` as `wasmcustom.<name>`.
/// Defining or setting it never fails a request: a host that refuses the metric
/// leaves a gauge that records nothing.
#[derive(Debug, Clone, Copy)]
pub struct Gauge(Option<u32>);

impl Gauge {
    /// Defines (or finds again: Envoy keys stats by name) the gauge `name`.
    pub fn define(name: &str) -> Gauge {
        let mut id: u32 = 0;
        // SAFETY: the slice and the out-pointer are valid for the call. 1 is
        // proxy-wasm's MetricType::Gauge.
        let status = unsafe { proxy_define_metric(1, name.as_ptr(), name.len(), &mut id) };
        Gauge((status == OK).then_some(id))
    }

    /// A gauge that records nothing (before one is defined).
    pub const fn none() -> Gauge {
        Gauge(None)
    }

    pub fn set(self, value: u64) {
        if let Some(id) = self.0 {
            // SAFETY: no pointers.
            let _ = unsafe { proxy_record_metric(id, value) };
        }
    }

    /// Moves the gauge by `delta`. Where every VM (one per worker) adds its own
    /// changes, the gauge holds their total; `set` would hold the last writer's.
    pub fn add(self, delta: i64) {
        if let Some(id) = self.0 {
            // SAFETY: no pointers.
            let _ = unsafe { proxy_increment_metric(id, delta) };
        }
    }
}

// The VM's linear memory, reported as `<plugin>.wasm_memory_bytes`: V8 traps a VM
// whose memory reaches 1 GiB, so an operator can watch the distance to it. Wasm
// memory only grows, so the gauge is written when it has grown since the last
// report: one `memory.size` instruction per stream, a host call only on growth.
const NO_GAUGE: u32 = u32::MAX;
static MEMORY_GAUGE: AtomicU32 = AtomicU32::new(NO_GAUGE);
static MEMORY_REPORTED: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn define_memory_gauge(plugin: &str) {
    if MEMORY_GAUGE.load(Ordering::Relaxed) != NO_GAUGE {
        return;
    }
    if let Gauge(Some(id)) = Gauge::define(&format!("{plugin}.wasm_memory_bytes")) {
        MEMORY_GAUGE.store(id, Ordering::Relaxed);
        MEMORY_REPORTED.store(0, Ordering::Relaxed);
        report_memory();
    }
}

pub(crate) fn report_memory() {
    let bytes = memory_bytes();
    if bytes == MEMORY_REPORTED.load(Ordering::Relaxed) {
        return;
    }
    let id = MEMORY_GAUGE.load(Ordering::Relaxed);
    if id != NO_GAUGE {
        MEMORY_REPORTED.store(bytes, Ordering::Relaxed);
        Gauge(Some(id)).set(bytes as u64);
    }
}

/// The size of the VM's linear memory in bytes (0 outside wasm).
pub fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>().saturating_mul(65536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}
