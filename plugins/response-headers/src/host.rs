//! The host's header maps behind the plan's [`Headers`] trait, through the
//! panic-free `common::host::HostHeaders`.

use crate::plan::Headers;
use common::host::HostHeaders;

/// A failed host call (the map is not available in this phase) leaves the map as
/// it is: there is nothing better to do with a response already on its way.
impl Headers for HostHeaders {
    fn contains(&mut self, name: &str) -> bool {
        HostHeaders::contains(*self, name)
    }

    fn add(&mut self, name: &str, value: &str) {
        HostHeaders::add(*self, name, value.as_bytes());
    }

    fn replace(&mut self, name: &str, value: &str) {
        HostHeaders::replace(*self, name, value.as_bytes());
    }

    fn remove(&mut self, name: &str) {
        HostHeaders::remove(*self, name);
    }
}
