//! The chart (`--svg FILE`): a grouped horizontal bar chart of a run's median ops/s per timed
//! workload, on a log scale with min-max whiskers, drawn as SVG text by hand. It shows the
//! two floors, mapcore's two main modes and the peers; the Discard modes and the decommitting
//! floor are in the tables only, to keep the groups readable.

use std::fmt::Write as _;

use crate::report::{si, Report, Row};

/// The series drawn, in order, with their colours: floors grey, mapcore blue, peers warm.
/// Dual-mapped series are hatched.
const SERIES: [(&str, &str); 8] = [
    ("floor", "#555555"),
    ("floor-dual", "#aaaaaa"),
    ("mapcore-retain", "#1f4e9c"),
    ("mapcore-dual", "#4fa3e0"),
    ("jit-allocator", "#d62728"),
    ("region", "#2ca02c"),
    ("cranelift-arena", "#ff7f0e"),
    ("cranelift-system", "#9467bd"),
];

/// Bar height, gap between groups, plot left and right edge, plot top, image width.
const BAR: f64 = 11.0;
const GAP: f64 = 16.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 900.0;
const TOP: f64 = 100.0;
const WIDTH: f64 = 1000.0;

/// The chart of `report`, as an SVG document.
pub(crate) fn svg(report: &Report) -> String {
    let series: Vec<(&str, &str)> = SERIES
        .into_iter()
        .filter(|(name, _)| {
            report
                .cases
                .iter()
                .any(|c| c.rows.iter().any(|r| r.name == *name))
        })
        .collect();
    let group_h = series.len() as f64 * BAR + GAP;
    let bottom = TOP + report.cases.len() as f64 * group_h;
    let height = bottom + 40.0;
    let drawn = || {
        report.cases.iter().flat_map(|c| {
            c.rows
                .iter()
                .filter(|r| r.skipped.is_none() && series.iter().any(|(n, _)| *n == r.name))
        })
    };
    let (lo, hi) = decades(drawn().flat_map(|r| [r.min(), r.max()]));
    let x = |v: f64| LEFT + (v.max(1.0).log10() - lo) / (hi - lo) * (RIGHT - LEFT);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    s.push_str(
        r#"<defs><pattern id="dual" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="1.5" height="4" fill="white" fill-opacity="0.55"/></pattern></defs>"#,
    );
    s.push('\n');
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">mapcore-bench: median ops/s per workload (log scale, whiskers = min-max)</text>"#
    );
    let m = &report.machine;
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="34" fill="#555">{} ({} CPUs), Linux {}, {}; hatched: dual mapping, plain: mprotect flip</text>"##,
        xml(&m.cpu),
        m.cpus,
        xml(&m.kernel),
        xml(&m.rustc)
    );
    for (i, (name, color)) in series.iter().enumerate() {
        let lx = LEFT + (i % 4) as f64 * 180.0;
        let ly = 56.0 + (i / 4) as f64 * 16.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{color}"/>{}<text x="{}" y="{ly}">{name}</text>"#,
            ly - 9.0,
            hatch(report, name, lx, ly - 9.0, 10.0, 10.0),
            lx + 14.0,
        );
    }
    let mut decade = lo;
    while decade <= hi {
        let gx = x(10f64.powf(decade));
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#ddd"/><text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            bottom + 14.0,
            decade_label(10f64.powf(decade))
        );
        decade += 1.0;
    }
    for (g, case) in report.cases.iter().enumerate() {
        let gy = TOP + g as f64 * group_h;
        let label = xml(&case.workload.label());
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{label}</text>"#,
            LEFT - 8.0,
            gy + group_h / 2.0 - GAP / 2.0 + 4.0,
        );
        for (i, (name, color)) in series.iter().enumerate() {
            let y = gy + i as f64 * BAR;
            let text_y = y + BAR - 3.0;
            match case.rows.iter().find(|r| r.name == *name) {
                Some(row) if row.skipped.is_none() => {
                    let w = x(row.median()) - LEFT;
                    let _ = writeln!(
                        s,
                        r#"<rect x="{LEFT}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{label} {name}: {} ops/s</title></rect>{}"#,
                        BAR - 2.0,
                        si(row.median()),
                        hatch(report, name, LEFT, y, w, BAR - 2.0),
                    );
                    let wy = y + (BAR - 2.0) / 2.0;
                    let _ = writeln!(
                        s,
                        r#"<line x1="{:.1}" y1="{wy:.1}" x2="{:.1}" y2="{wy:.1}" stroke="black" stroke-width="1"/><text x="{:.1}" y="{text_y:.1}" font-size="9">{}</text>"#,
                        x(row.min()),
                        x(row.max()),
                        x(row.max()) + 4.0,
                        si(row.median())
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{text_y:.1}" font-size="9" fill="{color}">{name}: not run</text>"#,
                        LEFT + 4.0,
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The hatch drawn over a dual-mapped series' box, or nothing.
fn hatch(report: &Report, name: &str, x: f64, y: f64, w: f64, h: f64) -> String {
    let dual = report
        .cases
        .iter()
        .flat_map(|c| &c.rows)
        .find(|r| r.name == name)
        .is_some_and(Row::is_dual);
    if dual {
        format!(r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="url(#dual)"/>"#)
    } else {
        String::new()
    }
}

/// The powers of ten (as exponents) that enclose `values`; 10^3..10^8 if there are none.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() && hi > 0.0 {
        let lo = lo.max(1.0).log10().floor();
        (lo, hi.log10().ceil().max(lo + 1.0))
    } else {
        (3.0, 8.0)
    }
}

/// `10k`, `1M` style, for powers of ten.
fn decade_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contenders::Security;
    use crate::report::{Case, Machine};
    use crate::workload::Workload;

    fn row(name: &'static str, security: Security, ops: f64) -> Row {
        Row {
            name,
            security,
            samples: vec![ops * 0.9, ops, ops * 1.1],
            wall: vec![ops],
            allocs_per_op: 0.0,
            syscalls: None,
            skipped: None,
        }
    }

    #[test]
    fn draws_each_series_present_and_hatches_the_dual_ones() {
        let rows = vec![
            row("floor", Security::Flip, 150e3),
            row("floor-dual", Security::Dual, 5e6),
            row("mapcore-discard", Security::Flip, 90e3),
            row("mapcore-dual", Security::Dual, 2e6),
        ];
        let report = Report {
            cases: vec![Case {
                workload: Workload::Cycle(4096),
                rows,
            }],
            rss: Vec::new(),
            machine: Machine::detect(),
            command: String::new(),
            samples: 3,
            sample_ms: 1,
            seconds: 0.0,
        };
        let svg = svg(&report);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<title>").count(),
            3,
            "floor, floor-dual, mapcore-dual"
        );
        assert!(!svg.contains("mapcore-discard"), "not a chart series");
        assert!(svg.contains("W1 4 KiB mapcore-dual: 2.00M ops/s"));
        // Two dual series: a hatch over each bar and each legend box.
        assert_eq!(svg.matches("url(#dual)").count(), 4);
    }

    #[test]
    fn decades_enclose_the_values() {
        assert_eq!(decades([150_000.0, 9_000_000.0].into_iter()), (5.0, 7.0));
        assert_eq!(decades([100_000.0].into_iter()), (5.0, 6.0));
        assert_eq!(decades(std::iter::empty()), (3.0, 8.0));
        assert_eq!(decade_label(1e6), "1M");
        assert_eq!(decade_label(1e4), "10k");
    }
}
