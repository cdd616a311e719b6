//! chain: every plugin in one module, running a configured list of instances
//! inside one HTTP filter and one VM, so a gateway that stacks several plugins
//! pays Envoy's per-filter cost once. Requests run the instances in list order,
//! responses in reverse, a denial stops the chain, and a call pauses it, as with
//! separate filters (`common::plugin::Chain`); `config` reads the list.

pub mod config;

#[cfg(target_arch = "wasm32")]
common::proxy_wasm::main! {{
    common::proxy_wasm::set_root_context(|_| {
        Box::new(common::adapter::Root::new(config::NAME, config::parse))
    });
}}
