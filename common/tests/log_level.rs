//! A level the host has off costs nothing: with the level set from the host's
//! (as `adapter` sets it at configure), a disabled `debug!` formats none of its
//! arguments and reaches no logger. A test binary of its own, because the level
//! is process-wide and the other tests let every level through.

use common::logger::{filter_for, install, take_captured};
use log::Level;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

static FORMATTED: AtomicUsize = AtomicUsize::new(0);

/// Counts how often it is formatted.
struct Counted;

impl fmt::Display for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        FORMATTED.fetch_add(1, Ordering::Relaxed);
        f.write_str("counted")
    }
}

fn formatted() -> usize {
    FORMATTED.load(Ordering::Relaxed)
}

#[test]
fn disabled_levels_format_nothing_and_log_nothing() {
    // proxy-wasm's info (2): Envoy's default level.
    install(filter_for(2));
    log::debug!("#7 {}", Counted);
    log::trace!("#7 {}", Counted);
    assert_eq!(formatted(), 0, "a disabled debug! formatted its arguments");
    assert!(take_captured().is_empty());

    log::info!("#7 {}", Counted);
    log::warn!("#7 {}", Counted);
    assert_eq!(formatted(), 2);
    assert_eq!(
        take_captured(),
        [
            (Level::Info, "#7 counted".to_string()),
            (Level::Warn, "#7 counted".to_string()),
        ]
    );

    // The level read again (a later configure after the admin `/logging`
    // changed it): debug now on; then Envoy's `off` (6), where even errors
    // are not formatted.
    install(filter_for(1));
    log::debug!("#8 {}", Counted);
    assert_eq!(formatted(), 3);
    assert_eq!(take_captured(), [(Level::Debug, "#8 counted".to_string())]);
    install(filter_for(6));
    log::error!("#9 {}", Counted);
    assert_eq!(formatted(), 3, "at off nothing is formatted");
    assert!(take_captured().is_empty());
}
