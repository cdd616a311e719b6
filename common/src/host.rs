//! The thin edge between plugin logic and the proxy-wasm host: a generic root
//! context that parses config once, level-checked logging, a panic-free header map
//! read, sending a deny response, and gauges in Envoy's stats. Only the wasm
//! adapters call into this module.

use crate::config::ConfigError;
use crate::deny::DenyResponse;
use crate::headers::{pairs, serialize, Pairs};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// What a plugin crate tells the shared root context.
pub trait Plugin: 'static {
    /// The plugin's name, as it opens its log lines.
    const NAME: &'static str;
    /// Everything the plugin builds from its configuration, once per configure.
    type Config: 'static;
    /// Parses the raw `pluginConfig` bytes (empty when none was given).
    fn configure(bytes: &[u8]) -> Result<Self::Config, ConfigError>;
    /// A context for one HTTP stream, sharing the parsed configuration.
    fn http_context(config: Rc<Self::Config>, context_id: u32) -> Box<dyn HttpContext>;
}

/// The root context every plugin uses: it owns the parsed configuration and hands
/// an `Rc` of it to each stream, so nothing is parsed per request.
pub struct Root<P: Plugin> {
    config: Option<Rc<P::Config>>,
    plugin: PhantomData<P>,
}

impl<P: Plugin> Root<P> {
    pub fn new() -> Self {
        Root {
            config: None,
            plugin: PhantomData,
        }
    }
}

impl<P: Plugin> Default for Root<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> Context for Root<P> {}

impl<P: Plugin> RootContext for Root<P> {
    fn on_configure(&mut self, _size: usize) -> bool {
        refresh_log_level();
        define_memory_gauge(P::NAME);
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match P::configure(&bytes) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                log(
                    LogLevel::Debug,
                    format_args!("{}: configuration loaded", P::NAME),
                );
                true
            }
            Err(e) => {
                log(
                    LogLevel::Error,
                    format_args!("{}: invalid configuration: {e}", P::NAME),
                );
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        report_memory();
        // Without a valid configuration Envoy does not create streams for us. If it
        // ever did, the stream is refused with a local reply: returning `None` here
        // would make the SDK panic, killing the VM for every later request.
        Some(match self.config.clone() {
            Some(config) => P::http_context(config, context_id),
            None => Box::new(Unconfigured(P::NAME)),
        })
    }
}

/// The stream of a plugin that has no configuration: fails closed.
struct Unconfigured(&'static str);

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        warn(format_args!(
            "{}: no configuration: request refused",
            self.0
        ));
        send_response(
            503,
            "wasm_plugin_not_configured",
            &[],
            b"plugin not configured\n",
        );
        Action::Pause
    }
}

// The host's log level, read at configure time so that a disabled level costs one
// comparison and no formatting. Each VM is single-threaded; Relaxed is enough.
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

fn refresh_log_level() {
    let mut level: u32 = 0;
    // SAFETY: the host writes one u32 through a pointer to a live local. Read as
    // an integer: Envoy reports `off` as 6, which the SDK's `LogLevel` lacks.
    if unsafe { proxy_get_log_level(&mut level) } == OK {
        LEVEL.store(level.min(u32::from(u8::MAX)) as u8, Ordering::Relaxed);
    }
}

/// True when the host would keep a message at `level`.
fn log_enabled(level: LogLevel) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Logs `message` at `level`; formats nothing when the level is disabled, and
/// allocates nothing for a message without arguments.
fn log(level: LogLevel, message: fmt::Arguments<'_>) {
    if !log_enabled(level) {
        return;
    }
    let text;
    let text = match message.as_str() {
        Some(constant) => constant,
        None => {
            text = message.to_string();
            text.as_str()
        }
    };
    // SAFETY: the slice is valid for the duration of the call.
    let _ = unsafe { proxy_log(level as u32, text.as_ptr(), text.len()) };
}

pub fn debug(message: fmt::Arguments<'_>) {
    log(LogLevel::Debug, message);
}

pub fn warn(message: fmt::Arguments<'_>) {
    log(LogLevel::Warn, message);
}

// Declared here rather than used through the SDK's `hostcalls`, which panic on an
// unexpected status (a panic kills the VM for every later request, envoy#26485)
// and copy values into `String`s, panicking again on a value that is not UTF-8.
// Statuses are read as plain integers (0 is Ok): a value the SDK's `Status` enum
// lacks must not become an invalid enum.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

const OK: u32 = 0;

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
        // over a buffer it allocated through the SDK's `proxy_on_memory_allocate` (a
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

/// A header map copied out of the host in one call, read in place.
pub struct HeaderMap {
    buf: Vec<u8>,
}

impl HeaderMap {
    /// The request headers. Unlike the SDK's `get_http_request_headers`, this neither
    /// allocates per header nor panics on a value that is not UTF-8.
    pub fn request() -> Self {
        Self::read(MapType::HttpRequestHeaders)
    }

    /// The headers of a `dispatch_http_call` response, inside `on_http_call_response`.
    pub fn call_response() -> Self {
        Self::read(MapType::HttpCallResponseHeaders)
    }

    fn read(map_type: MapType) -> Self {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: on success the host hands us a buffer it allocated through the
        // SDK's `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes),
        // which we now own; the SDK's own `get_map` takes it over the same way.
        let buf = unsafe {
            match proxy_get_header_map_pairs(map_type, &mut data, &mut size) {
                OK if !data.is_null() => Vec::from_raw_parts(data, size, size),
                _ => Vec::new(),
            }
        };
        HeaderMap { buf }
    }

    pub fn pairs(&self) -> Pairs<'_> {
        pairs(&self.buf)
    }

    /// Every value of header `name` (lowercase), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs()
            .filter(move |(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }
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

fn define_memory_gauge(plugin: &str) {
    if MEMORY_GAUGE.load(Ordering::Relaxed) != NO_GAUGE {
        return;
    }
    if let Gauge(Some(id)) = Gauge::define(&format!("{plugin}.wasm_memory_bytes")) {
        MEMORY_GAUGE.store(id, Ordering::Relaxed);
        MEMORY_REPORTED.store(0, Ordering::Relaxed);
        report_memory();
    }
}

fn report_memory() {
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
