//! The soak's report: the table of readings, the growth of each quantity, and
//! the verdict, printed as the run goes and kept for the file.

use super::mix::Kind;
use super::{Reading, Tally, TIME_LIMIT};
use harness::envoy::target_dir;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Envoy's RSS moves by a few pages between readings for reasons that are not
/// leaks (the allocator keeping pages it has freed, connection churn): growth
/// under 8 KiB per 100k, well under the +23 KB per 100k of the leak report, or
/// under 64 KiB in all (a short try normalised to 100k would magnify a wiggle)
/// is flat.
const RSS_NOISE: Noise = Noise {
    per_100k: 8.0,
    total: 64.0,
};
/// Wasm memory grows in 64 KiB pages and never shrinks: any page added after the
/// warmup is growth.
const ANY_PAGE: Noise = Noise {
    per_100k: 0.0,
    total: 0.0,
};

/// The text printed as it comes and written to the report file at the end.
#[derive(Default)]
pub struct Report {
    pub text: String,
}

impl Report {
    pub fn line(&mut self, line: String) {
        println!("{line}");
        self.text.push_str(&line);
        self.text.push('\n');
    }
}

pub fn report_path(only: Option<&str>) -> PathBuf {
    let name = match only {
        None => "soak.txt".to_string(),
        Some(only) => format!("soak-{}.txt", only.replace(',', "+")),
    };
    target_dir().join("bench").join(name)
}

pub fn heaps_text(plugins: &[&str], heaps: &[Option<u64>]) -> String {
    if plugins.is_empty() {
        return "none (no plugin)".into();
    }
    plugins
        .iter()
        .zip(heaps)
        .map(|(p, h)| format!("{p} {}", kib_text(*h)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kib_text(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{} KiB", b / 1024))
}

pub fn table_header(plugins: &[&str]) -> String {
    let mut s = format!(
        "{:>9} {:>10} {:>10} {:>10}",
        "requests", "RSS", "RssAnon", "allocated"
    );
    for p in plugins {
        let _ = write!(s, " {:>w$}", p, w = column(p));
    }
    let _ = write!(s, " {:>10} {:>8}", "auth calls", "req/s");
    s
}

fn column(plugin: &str) -> usize {
    plugin.len().max(8)
}

/// One reading; the call count and rate are those of the stretch since `previous`.
pub fn table_row(plugins: &[&str], r: &Reading, previous: Option<&Reading>) -> String {
    let mut s = format!(
        "{:>9} {:>10} {:>10} {:>10}",
        r.requests,
        r.rss_kib,
        r.anon_kib,
        r.allocated / 1024
    );
    for (p, heap) in plugins.iter().zip(&r.heaps) {
        let w = column(p);
        let _ = write!(
            s,
            " {:>w$}",
            heap.map_or("-".into(), |b| (b / 1024).to_string())
        );
    }
    let rate = previous
        .map(|p| {
            let secs = (r.driving - p.driving).as_secs_f64();
            format!("{:.0}", (r.requests - p.requests) as f64 / secs.max(1e-9))
        })
        .unwrap_or_else(|| "warmup".into());
    let _ = write!(s, " {:>10} {:>8}", r.auth_calls, rate);
    s
}

pub fn summarize(
    report: &mut Report,
    plugins: &[&str],
    readings: &[Reading],
    tally: &Tally,
    requests: usize,
    elapsed: Duration,
    driving: Duration,
) {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return;
    };
    let done = last.requests;
    let minutes = |d: Duration| format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60);
    report.line(if done >= requests {
        format!(
            "stopped at the request count: {done} requests in {} (warmup and readings included)",
            minutes(elapsed)
        )
    } else {
        format!(
            "stopped at the time limit ({}): {done} of {requests} requests",
            minutes(TIME_LIMIT)
        )
    });
    if done > 0 {
        report.line(format!(
            "throughput {:.0} requests/s; Envoy CPU {:.1} µs per request (all threads, \
             admin reads included)",
            done as f64 / driving.as_secs_f64().max(1e-9),
            (last.cpu - first.cpu).as_secs_f64() * 1e6 / done as f64
        ));
    }
    let per_kind: Vec<String> = Kind::ALL
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let unexpected = match tally.unexpected[k] {
                0 => String::new(),
                n => format!(" ({n} unexpected)"),
            };
            format!("{} {}{unexpected}", tally.sent[k], kind.label())
        })
        .collect();
    report.line(format!("sent (warmup included): {}", per_kind.join("; ")));
    if let Some(example) = &tally.first_unexpected {
        report.line(format!("first unexpected answer: {example}"));
    }
    if tally.broken > 0 {
        report.line(format!("broken connections (reopened): {}", tally.broken));
    }

    report.line(String::new());
    report.line(
        "growth per 100k requests (least-squares slope over the readings after the warmup, \
         then over their second half):"
            .into(),
    );
    let mut series: Vec<Series> = vec![
        (
            "Envoy RSS".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.rss_kib as f64))
                .collect(),
        ),
        (
            "Envoy RssAnon".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.anon_kib as f64))
                .collect(),
        ),
        (
            "Envoy allocated".into(),
            RSS_NOISE,
            readings
                .iter()
                .map(|r| (r.requests, r.allocated as f64 / 1024.0))
                .collect(),
        ),
    ];
    for (i, plugin) in plugins.iter().enumerate() {
        let points: Vec<(usize, f64)> = readings
            .iter()
            .filter_map(|r| Some((r.requests, (*r.heaps.get(i)?)? as f64 / 1024.0)))
            .collect();
        series.push((format!("{plugin} VM"), ANY_PAGE, points));
    }
    let mut growing = Vec::new();
    let mut rss = None;
    let mut vms_unchanged = true;
    let mut vms = Vec::new();
    for (name, noise, points) in &series {
        let Some(t) = trend(points, noise) else {
            report.line(format!("  {name:<24} fewer than two readings"));
            continue;
        };
        let (start, end) = (points[0].1, points[points.len() - 1].1);
        report.line(format!(
            "  {name:<24} {start:>8.0} -> {end:>8.0} KiB {:>+8.1} KiB per 100k, second half \
             {:>+6.1}  {}",
            t.per_100k,
            t.late_per_100k,
            if t.growing { "growing" } else { "flat" }
        ));
        let figure = format!(
            "{name} {:+.1} KiB per 100k, second half {:+.1}",
            t.per_100k, t.late_per_100k
        );
        match name.as_str() {
            // These tell where RSS growth comes from; the verdict is on RSS itself.
            "Envoy RssAnon" | "Envoy allocated" => continue,
            "Envoy RSS" => rss = Some(figure.clone()),
            _ => {
                vms_unchanged &= end == start;
                vms.push(format!("{name} {:+.1}", t.per_100k));
            }
        }
        if t.growing {
            growing.push(figure);
        }
    }
    report.line(String::new());
    report.line(if readings.len() < 2 {
        "verdict: none (fewer than two readings)".into()
    } else if growing.is_empty() {
        let vms = if vms.is_empty() {
            String::new()
        } else if vms_unchanged {
            "; every plugin VM's wasm memory unchanged".into()
        } else {
            format!("; {} KiB per 100k", vms.join(", "))
        };
        format!(
            "verdict: flat ({}{vms}; RSS noise floor {} KiB per 100k, {} KiB in all)",
            rss.unwrap_or_default(),
            RSS_NOISE.per_100k,
            RSS_NOISE.total
        )
    } else {
        format!("verdict: growing ({})", growing.join("; "))
    });
}

/// A quantity watched over the run: its name, its noise floor, and its readings
/// (requests, KiB).
type Series = (String, Noise, Vec<(usize, f64)>);

/// Growth that is not a leak, in KiB: per 100k requests, and over the whole run.
#[derive(Debug, Clone, Copy)]
struct Noise {
    per_100k: f64,
    total: f64,
}

#[derive(Debug, PartialEq)]
struct Trend {
    /// Least-squares slope over the run, per 100k requests.
    per_100k: f64,
    /// The same over the second half of the readings.
    late_per_100k: f64,
    growing: bool,
}

/// The trend of `points` (requests, KiB). Growing means growth above `noise` per
/// 100k over the run and again over its second half, and above `noise` in all. The
/// second half keeps a step early on that then held (a cache or pool reaching its
/// size, after too short a warmup) from reading as a leak: spread over the run
/// by the slope, such a step looks just like one.
fn trend(points: &[(usize, f64)], noise: &Noise) -> Option<Trend> {
    let per_100k = slope(points)? * 100_000.0;
    let late = points.get((points.len() - 1) / 2..).unwrap_or(points);
    let late_per_100k = slope(late).unwrap_or(per_100k / 100_000.0) * 100_000.0;
    let total = points[points.len() - 1].1 - points[0].1;
    Some(Trend {
        per_100k,
        late_per_100k,
        growing: per_100k > noise.per_100k && late_per_100k > noise.per_100k && total > noise.total,
    })
}

/// The least-squares slope of `points`; none without two distinct x.
fn slope(points: &[(usize, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(x, y) in points {
        let dx = x as f64 - mean_x;
        sxy += dx * (y - mean_y);
        sxx += dx * dx;
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Vec<(usize, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i * 100_000, *v))
            .collect()
    }

    #[test]
    fn trend_tells_flat_from_growing() {
        // name, readings 100k apart, noise floor, expected (slope, growing)
        type Row<'a> = (&'a str, &'a [f64], Noise, Option<(f64, bool)>);
        let cases: &[Row] = &[
            ("one reading", &[100.0], ANY_PAGE, None),
            ("steady", &[100.0; 11], ANY_PAGE, Some((0.0, false))),
            (
                "the leak report: +23 KiB per 100k",
                &[0.0, 23.0, 46.0, 69.0, 92.0, 115.0],
                RSS_NOISE,
                Some((23.0, true)),
            ),
            (
                "a slope under the floor",
                &[0.0, 4.0, 0.0, 8.0, 4.0, 12.0],
                RSS_NOISE,
                Some((34.0 / 17.5, false)),
            ),
            (
                "a slope over the floor, but less in all (a short try)",
                &[0.0, 20.0, 40.0, 60.0],
                RSS_NOISE,
                Some((20.0, false)),
            ),
            (
                // Envoy's RSS in a soak whose warmup was 20k requests, shorter than
                // a cache TTL: the leak report's figure, but a step, not a slope.
                "a step in the first stretch, then flat",
                &[
                    124928.0, 125236.0, 125260.0, 125260.0, 125312.0, 125312.0, 125312.0, 125312.0,
                    125316.0, 125316.0, 125316.0,
                ],
                RSS_NOISE,
                Some((2532.0 / 110.0, false)),
            ),
            (
                "a step early on that then holds",
                &[0.0, 64.0, 64.0, 64.0, 64.0, 64.0, 64.0],
                ANY_PAGE,
                Some((6.857142857142857, false)),
            ),
            (
                "a page late in the run",
                &[0.0, 0.0, 0.0, 0.0, 0.0, 64.0],
                ANY_PAGE,
                Some((64.0 / 7.0, true)),
            ),
            (
                "two readings, rising",
                &[0.0, 10.0],
                ANY_PAGE,
                Some((10.0, true)),
            ),
            (
                "shrinking",
                &[50.0, 40.0, 30.0],
                ANY_PAGE,
                Some((-10.0, false)),
            ),
        ];
        for (name, values, noise, expected) in cases {
            let got = trend(&series(values), noise);
            match (got, expected) {
                (None, None) => {}
                (Some(t), Some((slope, growing))) => {
                    assert!((t.per_100k - slope).abs() < 1e-6, "{name}: {t:?}");
                    assert_eq!(t.growing, *growing, "{name}: {t:?}");
                }
                (got, _) => panic!("{name}: {got:?} instead of {expected:?}"),
            }
        }
    }
}
