//! The proxy-wasm ABI (0.2.1) as Envoy implements it: the enums its calls take,
//! the imports (declared here: the modules do not link the SDK), and, natively,
//! stubs that answer every call Unimplemented. Only `host` calls these.

/// The proxy-wasm ABI's log levels (`proxy_log`, `proxy_get_log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// What a stream callback answers: go on, or hold the stream (a wait, or a local
/// reply sent: after one a filter must not return Continue, rust-sdk#105).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// The header maps of the ABI's `proxy_*_header_map_*` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpResponseHeaders = 2,
    HttpCallResponseHeaders = 6,
}

/// The buffers of the ABI's `proxy_get_buffer_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    HttpCallResponseBody = 4,
    PluginConfiguration = 7,
}

/// The streams of the ABI's `proxy_continue_stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StreamType {
    HttpRequest = 0,
}

// The ABI's imports, declared here: the modules do not link the proxy-wasm SDK
// (see `adapter`), whose `hostcalls` also panic on an unexpected status (a panic
// kills the VM for every later request, envoy#26485) and copy values into
// `String`s, panicking again on a value that is not UTF-8. Statuses are read as
// plain integers (0 is Ok): a value an enum lacks must not become an invalid enum.
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    pub(crate) fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    pub(crate) fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    pub(crate) fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    pub(crate) fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    pub(crate) fn proxy_get_log_level(return_level: *mut u32) -> u32;
    pub(crate) fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    pub(crate) fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    pub(crate) fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    pub(crate) fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    pub(crate) fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> u32;
    pub(crate) fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    pub(crate) fn proxy_continue_stream(stream_type: StreamType) -> u32;
    pub(crate) fn proxy_set_effective_context(context_id: u32) -> u32;
    pub(crate) fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    pub(crate) fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    pub(crate) fn proxy_send_local_response(
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

// Natively (xtask and unit tests link the plugins to check their configs) there is
// no host: every call answers Unimplemented, so nothing that reaches the host at
// configure time, such as defining a gauge, keeps a crate from linking.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod native {
    use super::{BufferType, MapType, StreamType};

    const UNIMPLEMENTED: u32 = 12;

    pub unsafe extern "C" fn proxy_log(
        _level: u32,
        _message_data: *const u8,
        _message_size: usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_define_metric(
        _metric_type: u32,
        _name_data: *const u8,
        _name_size: usize,
        _return_id: *mut u32,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_record_metric(_metric_id: u32, _value: u64) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_increment_metric(_metric_id: u32, _offset: i64) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_get_log_level(_return_level: *mut u32) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_get_header_map_pairs(
        _map_type: MapType,
        _return_map_data: *mut *mut u8,
        _return_map_size: *mut usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_get_header_map_value(
        _map_type: MapType,
        _key_data: *const u8,
        _key_size: usize,
        _return_value_data: *mut *mut u8,
        _return_value_size: *mut usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_add_header_map_value(
        _map_type: MapType,
        _key_data: *const u8,
        _key_size: usize,
        _value_data: *const u8,
        _value_size: usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_replace_header_map_value(
        _map_type: MapType,
        _key_data: *const u8,
        _key_size: usize,
        _value_data: *const u8,
        _value_size: usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_remove_header_map_value(
        _map_type: MapType,
        _key_data: *const u8,
        _key_size: usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_get_current_time_nanoseconds(_return_time: *mut u64) -> u32 {
        UNIMPLEMENTED
    }

    #[allow(clippy::too_many_arguments)]
    pub unsafe extern "C" fn proxy_http_call(
        _upstream_data: *const u8,
        _upstream_size: usize,
        _headers_data: *const u8,
        _headers_size: usize,
        _body_data: *const u8,
        _body_size: usize,
        _trailers_data: *const u8,
        _trailers_size: usize,
        _timeout_ms: u32,
        _return_token: *mut u32,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_set_effective_context(_context_id: u32) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_continue_stream(_stream_type: StreamType) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_get_buffer_bytes(
        _buffer_type: BufferType,
        _start: usize,
        _max_size: usize,
        _return_buffer_data: *mut *mut u8,
        _return_buffer_size: *mut usize,
    ) -> u32 {
        UNIMPLEMENTED
    }

    pub unsafe extern "C" fn proxy_send_local_response(
        _status_code: u32,
        _status_code_details_data: *const u8,
        _status_code_details_size: usize,
        _body_data: *const u8,
        _body_size: usize,
        _headers_data: *const u8,
        _headers_size: usize,
        _grpc_status: i32,
    ) -> u32 {
        UNIMPLEMENTED
    }
}
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;

pub(crate) const OK: u32 = 0;
pub(crate) const BAD_ARGUMENT: u32 = 2;
pub(crate) const INTERNAL_FAILURE: u32 = 10;
