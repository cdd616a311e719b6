//! Plugins log with the `log` crate's macros: this is the `log::Log` behind them.
//! On wasm it writes through the panic-free `host::log` at the matching proxy-wasm
//! level, and `log::set_max_level` follows the host's level (read at configure),
//! so a disabled `debug!` is one comparison: no formatting, no host call. Inside a
//! chain each line starts with the instance's name (`team: ...`), which
//! [`plugin::Chain`](crate::plugin::Chain) sets around each instance's callback.
//! Natively (unit tests) lines are captured per thread for the recording hosts.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::RefCell;
use std::fmt;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

thread_local! {
    /// The name of the instance whose callback runs (empty: a plugin on its own).
    static LABEL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs the logger (once per VM: a second call, or a logger already set,
/// changes nothing) and lets through what `level` allows.
pub fn install(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// What a proxy-wasm log level (as `proxy_get_log_level` reports it: trace 0 ..
/// critical 5, and Envoy's `off` 6) lets through. At critical or off nothing a
/// plugin logs would be kept, so nothing is formatted.
pub fn filter_for(proxy_level: u32) -> LevelFilter {
    match proxy_level {
        0 => LevelFilter::Trace,
        1 => LevelFilter::Debug,
        2 => LevelFilter::Info,
        3 => LevelFilter::Warn,
        4 => LevelFilter::Error,
        _ => LevelFilter::Off,
    }
}

/// Runs `f` with log lines prefixed by `label` (when not empty), and clears it
/// after. Setting it copies the name into a buffer kept across calls: no
/// allocation once it has grown to the longest name.
pub(crate) fn with_label<T>(label: &str, f: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            LABEL.with(|l| {
                if let Ok(mut l) = l.try_borrow_mut() {
                    l.clear();
                }
            });
        }
    }
    LABEL.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            l.clear();
            l.push_str(label);
        }
    });
    let _clear = Clear;
    f()
}

/// Calls `write` with the line as the host gets it: the label's prefix, then the
/// message (a message without arguments and without a label is not copied).
fn with_line(args: &fmt::Arguments<'_>, write: impl FnOnce(&str)) {
    LABEL.with(|label| {
        let label = label.try_borrow();
        let label = label.as_deref().map_or("", String::as_str);
        match (label.is_empty(), args.as_str()) {
            (true, Some(constant)) => write(constant),
            (true, None) => write(&args.to_string()),
            (false, _) => write(&format!("{label}: {args}")),
        }
    });
}

impl Log for HostLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = record.level();
        with_line(record.args(), |line| write(level, line));
    }

    fn flush(&self) {}
}

#[cfg(target_arch = "wasm32")]
fn write(level: Level, line: &str) {
    use crate::host::{self, LogLevel};
    let level = match level {
        Level::Error => LogLevel::Error,
        Level::Warn => LogLevel::Warn,
        Level::Info => LogLevel::Info,
        Level::Debug => LogLevel::Debug,
        Level::Trace => LogLevel::Trace,
    };
    host::log_str(level, line);
}

// Kept on wasm too (where nothing writes to it) so that `plugin::testing`
// builds on every target; unused, it is not in the module.
thread_local! {
    static CAPTURED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
fn write(level: Level, line: &str) {
    CAPTURED.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.push((level, line.to_string()));
        }
    });
}

/// Natively: installs the logger letting every level through, for tests whose
/// recording host takes the lines with [`take_captured`].
pub fn capture() {
    install(LevelFilter::Trace);
}

/// Natively: the lines logged on this thread since the last call, in order.
pub fn take_captured() -> Vec<(Level, String)> {
    CAPTURED.with(|c| {
        c.try_borrow_mut()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_levels_map_to_filters() {
        let got: Vec<LevelFilter> = (0..=7).map(filter_for).collect();
        use LevelFilter::*;
        assert_eq!(got, [Trace, Debug, Info, Warn, Error, Off, Off, Off]);
    }

    #[test]
    fn lines_carry_the_label_only_while_it_is_set() {
        capture();
        take_captured();
        log::warn!("alone {}", 1);
        with_label("team", || log::debug!("in {}", "chain"));
        with_label("", || log::info!("constant"));
        log::error!("after");
        assert_eq!(
            take_captured(),
            [
                (Level::Warn, "alone 1".to_string()),
                (Level::Debug, "team: in chain".to_string()),
                (Level::Info, "constant".to_string()),
                (Level::Error, "after".to_string()),
            ]
        );
    }
}
