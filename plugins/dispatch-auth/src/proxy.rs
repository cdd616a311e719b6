//! The plugin's gauges in Envoy's stats, through common's panic-free host calls.

use crate::shared::{Gauges, Metric};
use common::host::Gauge;

/// The plugin's gauges in Envoy's stats, `wasmcustom.dispatch-auth.<metric>`.
pub struct EnvoyGauges([Gauge; 3]);

impl EnvoyGauges {
    /// Defines (or finds again: Envoy keys stats by name) every gauge.
    pub fn define() -> Self {
        EnvoyGauges(Metric::ALL.map(|m| {
            Gauge::define(&format!(
                "{}.{}",
                <crate::DispatchAuth as common::plugin::Plugin>::NAME,
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
