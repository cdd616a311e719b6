//! A module's entry points: the proxy-wasm exports Envoy calls, each a thin
//! call into `adapter`. A module exports only the callbacks its plugins use
//! (see `adapter` for why): `export_plugin!` for a plugin's own module,
//! `export_module!` for any other (the chain, test modules).

/// The entry point of a plugin crate's wasm module: `common::export_plugin!(MyPlugin);`,
/// with `response` when the plugin acts on responses and `calls` when it makes
/// calls out (`export_plugin!(MyPlugin, response, calls)`), as its
/// [`Plugin::RESPONSE`] and [`Plugin::CALLS`] say (checked at compile time).
/// It also names the plugin `<crate>::Exported`, on every target.
/// Only the crate's own wasm module has the entry point, under the crate's `module` feature:
/// xtask links every plugin natively (for their config types) and the chain
/// module links them all, where their exports would clash.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty $(, $callback:ident)*) => {
        const _: () = {
            let response = false $(|| $crate::__callback_is!(response, $callback))*;
            let calls = false $(|| $crate::__callback_is!(calls, $callback))*;
            assert!(
                <$plugin as $crate::Plugin>::RESPONSE == response,
                "export_plugin!: list `response` exactly when the plugin's RESPONSE is true"
            );
            assert!(
                <$plugin as $crate::Plugin>::CALLS == calls,
                "export_plugin!: list `calls` exactly when the plugin's CALLS is true"
            );
        };
        #[cfg(all(target_arch = "wasm32", feature = "module"))]
        $crate::export_module!($crate::adapter::Module::single::<$plugin>() $(, $callback)*);

        /// This crate's plugin under a fixed name: the lists of every plugin
        /// (xtask's, the chain module's) are generated from `plugins/` and name
        /// each `<crate>::Exported`.
        pub type Exported = $plugin;
    };
}

/// The proxy-wasm exports of a module running [`Module`] `$module`: the ones
/// every module needs, and those of each callback set listed (`response`: the
/// response headers; `calls`: call answers, and request body and trailers,
/// which are held while a call is out).
#[macro_export]
macro_rules! export_module {
    ($module:expr $(, $callback:ident)*) => {
        const _: () = {
            static MODULE: $crate::adapter::Module = $module;

            #[no_mangle]
            pub extern "C" fn _initialize() {
                extern "C" {
                    fn __wasm_call_ctors();
                }
                // SAFETY: the reactor's constructors, run once as the VM starts.
                unsafe { __wasm_call_ctors() }
            }

            #[no_mangle]
            pub extern "C" fn proxy_abi_version_0_2_1() {}

            #[no_mangle]
            pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
                $crate::host::allocate(size)
            }

            #[no_mangle]
            pub extern "C" fn proxy_on_context_create(context_id: u32, root_id: u32) {
                $crate::adapter::on_context_create(context_id, root_id)
            }

            #[no_mangle]
            pub extern "C" fn proxy_on_configure(root_id: u32, size: usize) -> bool {
                $crate::adapter::on_configure(&MODULE, root_id, size)
            }

            #[no_mangle]
            pub extern "C" fn proxy_on_request_headers(
                context_id: u32,
                _headers: usize,
                _end_of_stream: bool,
            ) -> u32 {
                $crate::adapter::on_request_headers(&MODULE, context_id) as u32
            }

            #[no_mangle]
            pub extern "C" fn proxy_on_delete(context_id: u32) {
                $crate::adapter::on_delete(context_id)
            }

            $($crate::__export_callback!($callback);)*
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __callback_is {
    (response, response) => {
        true
    };
    (calls, calls) => {
        true
    };
    ($wanted:ident, $given:ident) => {
        false
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_callback {
    (response) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_response_headers(
            context_id: u32,
            _headers: usize,
            _end_of_stream: bool,
        ) -> u32 {
            $crate::adapter::on_response_headers(context_id) as u32
        }
    };
    (calls) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_http_call_response(
            context_id: u32,
            token: u32,
            headers: usize,
            body_size: usize,
            _trailers: usize,
        ) {
            $crate::adapter::on_http_call_response(context_id, token, headers, body_size)
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_request_body(
            context_id: u32,
            _size: usize,
            _end_of_stream: bool,
        ) -> u32 {
            $crate::adapter::hold(context_id) as u32
        }

        #[no_mangle]
        pub extern "C" fn proxy_on_request_trailers(context_id: u32, _trailers: usize) -> u32 {
            $crate::adapter::hold(context_id) as u32
        }
    };
}
