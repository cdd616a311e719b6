//! The host's header maps behind the [`Headers`] trait, called directly instead of
//! through the SDK's `hostcalls`, which panic on an unexpected status (a panic kills
//! the VM for every later request, envoy#26485) and copy a value into a `String`
//! (panicking again when it is not UTF-8) just to say whether a header exists.

use crate::plan::Headers;
use proxy_wasm::types::{MapType, Status};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
}

/// One of the current stream's header maps. A failed host call (the map is not
/// available in this phase) leaves the map as it is: there is nothing better to do
/// with a response already on its way.
pub struct HostHeaders(pub MapType);

impl Headers for HostHeaders {
    fn contains(&mut self, name: &str) -> bool {
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
            matches!(status, Status::Ok)
        }
    }

    fn add(&mut self, name: &str, value: &str) {
        // SAFETY: both slices are valid for the duration of the call.
        unsafe {
            proxy_add_header_map_value(
                self.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            );
        }
    }

    fn replace(&mut self, name: &str, value: &str) {
        // SAFETY: both slices are valid for the duration of the call.
        unsafe {
            proxy_replace_header_map_value(
                self.0,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            );
        }
    }

    fn remove(&mut self, name: &str) {
        // SAFETY: the slice is valid for the duration of the call.
        unsafe {
            proxy_remove_header_map_value(self.0, name.as_ptr(), name.len());
        }
    }
}
