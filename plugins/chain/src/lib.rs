//! chain: every plugin in one module, running a configured list of instances
//! inside one HTTP filter and one VM, so a gateway that stacks several plugins
//! pays Envoy's per-filter cost once. Requests run the instances in list order,
//! responses in reverse, a denial stops the chain, and a call pauses it, as with
//! separate filters (`common::plugin::Chain`); `config` reads the list.

pub mod config;

// Every callback set: an instance of any plugin may act on responses or call out.
#[cfg(target_arch = "wasm32")]
common::export_module!(
    common::adapter::Module::new(config::NAME, config::parse),
    response,
    calls
);
