//! empty: a test-only filter that does nothing per request (no header read, no
//! allocation, `Continue` everywhere), so `cargo xtask bench` can measure the
//! floor every Rust proxy-wasm filter pays: Envoy's per-stream plumbing and the
//! SDK's dispatch. Not a plugin: `cargo xtask build-all` never builds it.
//!
//! Its configuration may name per-request costs to add, comma-separated, so
//! `cargo xtask bench --costs` can price each one against the floor:
//!
//! - `header-pairs`: reads the request header map once (`proxy_get_header_map_pairs`)
//!   and looks for `allow: true` in it, as header-authorization does
//! - `header-value`: reads the request header `allow` (`proxy_get_header_map_value`)
//! - `header-value-absent`: reads a request header that is not there
//! - `debug-log`: logs at debug behind a level read at configure time (no host call
//!   while debug is off)
//! - `debug-log-call`: calls `proxy_log` at debug, for Envoy to drop
//! - `box`: a stream context that holds an `Rc` of the config and its id, as the
//!   plugins' do (one allocation per stream; the others are zero-sized)
//! - `alloc`: allocates and frees 16 bytes
//! - `on-response-headers`: a stream context that implements
//!   `on_http_response_headers` (returning `Continue`); alone, not with the above
//! - `add-response-header`: adds one response header (implies the above)
//! - `sdk-http-context`: streams made by a `set_http_context` callback instead of
//!   the root context's `create_http_context`
//! - `times=N`: the request probes run N times (1 to 100) per request, as N plugin
//!   instances in one filter would each run them
//!
//! What an instance picks is kept per VM, so instances that pick differently need
//! VMs of their own (a `vm_id` each, as the bench gives them).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(Root { config: Rc::new(String::new()) }));
}}

const HEADER_PAIRS: u32 = 1;
const HEADER_VALUE: u32 = 1 << 1;
const HEADER_VALUE_ABSENT: u32 = 1 << 2;
const DEBUG_LOG: u32 = 1 << 3;
const DEBUG_LOG_CALL: u32 = 1 << 4;
const BOX: u32 = 1 << 5;
const ON_RESPONSE_HEADERS: u32 = 1 << 6;
const ADD_RESPONSE_HEADER: u32 = 1 << 7;
const SDK_HTTP_CONTEXT: u32 = 1 << 8;
const ALLOC: u32 = 1 << 9;

const NAMES: [(&str, u32); 10] = [
    ("header-pairs", HEADER_PAIRS),
    ("header-value", HEADER_VALUE),
    ("header-value-absent", HEADER_VALUE_ABSENT),
    ("debug-log", DEBUG_LOG),
    ("debug-log-call", DEBUG_LOG_CALL),
    ("box", BOX),
    ("on-response-headers", ON_RESPONSE_HEADERS),
    ("add-response-header", ADD_RESPONSE_HEADER),
    ("sdk-http-context", SDK_HTTP_CONTEXT),
    ("alloc", ALLOC),
];

/// What the request-side contexts do per request.
const REQUEST_SIDE: u32 =
    HEADER_PAIRS | HEADER_VALUE | HEADER_VALUE_ABSENT | DEBUG_LOG | DEBUG_LOG_CALL | ALLOC;

// In a static rather than in the stream context, so that context stays zero-sized
// and its Box allocates nothing: only `box` should pay for an allocation.
static PROBES: AtomicU32 = AtomicU32::new(0);
static TIMES: AtomicU32 = AtomicU32::new(1);
static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
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
}

struct Root {
    config: Rc<String>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut probes = 0;
        let mut times = 1;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if let Some(n) = word.strip_prefix("times=") {
                match n.parse::<u32>() {
                    Ok(n @ 1..=100) => times = n,
                    _ => {
                        log(
                            LogLevel::Error,
                            &format!("empty: times={n}: expected 1..=100"),
                        );
                        return false;
                    }
                }
                continue;
            }
            match NAMES.iter().find(|(name, _)| *name == word) {
                Some((_, bit)) => probes |= bit,
                None => {
                    log(LogLevel::Error, &format!("empty: unknown probe '{word}'"));
                    return false;
                }
            }
        }
        if probes & (ON_RESPONSE_HEADERS | ADD_RESPONSE_HEADER) != 0
            && probes & (REQUEST_SIDE | BOX) != 0
        {
            log(LogLevel::Error, "empty: response probes go alone");
            return false;
        }
        let mut level: u32 = 0;
        // SAFETY: the host writes one u32 through a pointer to a live local.
        if unsafe { proxy_get_log_level(&mut level) } == 0 {
            LEVEL.store(level.min(u32::from(u8::MAX)) as u8, Ordering::Relaxed);
        }
        PROBES.store(probes, Ordering::Relaxed);
        TIMES.store(times, Ordering::Relaxed);
        if probes & SDK_HTTP_CONTEXT != 0 {
            // The dispatcher then takes the path a module that calls
            // `set_http_context` in `main!` takes for every stream.
            proxy_wasm::set_http_context(|_, _| Box::new(Empty));
        }
        self.config = Rc::new(text);
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let probes = PROBES.load(Ordering::Relaxed);
        Some(if probes & BOX != 0 {
            Box::new(Owned {
                config: self.config.clone(),
                id: context_id,
            })
        } else if probes & REQUEST_SIDE != 0 {
            Box::new(Probing)
        } else if probes & (ON_RESPONSE_HEADERS | ADD_RESPONSE_HEADER) != 0 {
            Box::new(Responding)
        } else {
            Box::new(Empty)
        })
    }
}

/// The floor: every callback is the SDK's default.
struct Empty;

impl Context for Empty {}
impl HttpContext for Empty {}

/// Zero-sized, so creating it allocates nothing.
struct Probing;

impl Context for Probing {}

impl HttpContext for Probing {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        request_probes();
        Action::Continue
    }
}

/// The shape of a plugin's stream context: shared config and an id, boxed.
struct Owned {
    config: Rc<String>,
    id: u32,
}

impl Context for Owned {}

impl HttpContext for Owned {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        std::hint::black_box((&self.config, self.id));
        request_probes();
        Action::Continue
    }
}

struct Responding;

impl Context for Responding {}

impl HttpContext for Responding {
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if PROBES.load(Ordering::Relaxed) & ADD_RESPONSE_HEADER != 0 {
            let (name, value) = ("x-empty", "1");
            // SAFETY: both slices are valid for the duration of the call.
            unsafe {
                proxy_add_header_map_value(
                    MapType::HttpResponseHeaders,
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                );
            }
        }
        Action::Continue
    }
}

fn request_probes() {
    for _ in 0..TIMES.load(Ordering::Relaxed) {
        request_probe_once();
    }
}

fn request_probe_once() {
    let probes = PROBES.load(Ordering::Relaxed);
    if probes & HEADER_PAIRS != 0 {
        header_pairs();
    }
    if probes & HEADER_VALUE != 0 {
        header_value("allow");
    }
    if probes & HEADER_VALUE_ABSENT != 0 {
        header_value("x-empty-absent");
    }
    if probes & DEBUG_LOG != 0 && (LogLevel::Debug as u8) >= LEVEL.load(Ordering::Relaxed) {
        log(LogLevel::Debug, "empty: request headers");
    }
    if probes & DEBUG_LOG_CALL != 0 {
        log(LogLevel::Debug, "empty: request headers");
    }
    if probes & ALLOC != 0 {
        drop(std::hint::black_box(Box::new([0u64; 2])));
    }
}

fn header_pairs() {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on success the host hands over a buffer it allocated through the
    // SDK's `proxy_on_memory_allocate` (a boxed slice of `size` bytes); rebuilding
    // it as a Vec frees it.
    unsafe {
        proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size);
        if !data.is_null() {
            let buf = Vec::from_raw_parts(data, size, size);
            std::hint::black_box(find(&buf, b"allow") == Some(b"true".as_slice()));
        }
    }
}

/// The value of `name` in a serialized header map: a count, then the name and
/// value sizes of each pair, then each name and value followed by a NUL.
fn find<'a>(buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let u32_at = |at: usize| -> Option<usize> {
        let bytes = buf.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    for i in 0..count {
        let sizes = i.checked_mul(8)?.checked_add(4)?;
        let (name_len, value_len) = (u32_at(sizes)?, u32_at(sizes.checked_add(4)?)?);
        let name_end = data.checked_add(name_len)?;
        let value_start = name_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        if buf.get(data..name_end)? == name {
            return buf.get(value_start..value_end);
        }
        data = value_end.checked_add(1)?;
    }
    None
}

fn header_value(name: &str) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: as in `header_pairs`.
    unsafe {
        proxy_get_header_map_value(
            MapType::HttpRequestHeaders,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        );
        if !data.is_null() {
            std::hint::black_box(Vec::from_raw_parts(data, size, size));
        }
    }
}

fn log(level: LogLevel, message: &str) {
    // SAFETY: the slice is valid for the duration of the call.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn find_reads_the_hosts_header_map_format() {
        let map = b"\x02\0\0\0\x05\0\0\0\x01\0\0\0\x05\0\0\0\x04\0\0\0:path\0/\0allow\0true\0";
        assert_eq!(find(map, b"allow"), Some(b"true".as_slice()));
        assert_eq!(find(map, b":path"), Some(b"/".as_slice()));
        assert_eq!(find(map, b"host"), None);
        assert_eq!(find(map.get(..30).unwrap_or_default(), b"allow"), None);
    }
}
