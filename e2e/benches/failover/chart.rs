//! The failover distributions as an SVG strip chart, kept in `docs/` so they can be seen at a
//! glance: one row per scenario, family and figure, every run a dot, the median a bar and the
//! p95 a tick, on a logarithmic time axis (a crash takes seconds, a hand-over milliseconds), with
//! the goals marked. Plain SVG 1.1 text, no dependencies; a browser or GitHub renders it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::report::percentile;
use crate::{Figures, Series};

const WIDTH: f64 = 980.0;
const LEFT: f64 = 330.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const ROW: f64 = 26.0;
/// The axis spans 10 ms to 30 s.
const AXIS_MS: (f64, f64) = (10.0, 30_000.0);
const TICKS_MS: [f64; 8] = [10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10_000.0, 30_000.0];

/// One figure of a run, as [`Series::samples`] takes it.
type Figure = fn(&Figures) -> Option<Duration>;

/// The figures drawn, with their colours.
const FIGURES: [(&str, &str, Figure); 2] = [
    ("ARP/NDP answer from the new node", "#1f77b4", |f| f.answer),
    ("client served by the new node", "#d62728", |f| f.client),
];

fn x(ms: f64) -> f64 {
    let (low, high) = (AXIS_MS.0.ln(), AXIS_MS.1.ln());
    let clamped = ms.clamp(AXIS_MS.0, AXIS_MS.1).ln();
    LEFT + (clamped - low) / (high - low) * (WIDTH - LEFT - RIGHT)
}

fn label(ms: f64) -> String {
    if ms >= 1000.0 { format!("{} s", ms / 1000.0) } else { format!("{ms} ms") }
}

/// The chart for `series`.
pub(crate) fn draw(series: &[Series]) -> String {
    let rows = series.len() * FIGURES.len();
    let height = TOP + rows as f64 * ROW + 60.0;
    let bottom = TOP + rows as f64 * ROW;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let runs = series.iter().map(|s| s.runs.len()).max().unwrap_or(0);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="20" font-size="15" font-weight="bold">ironlb failover: time from the fault ({runs} runs each; dot = run, bar = median, tick = p95)</text>"#
    );
    for (i, (name, colour, _)) in FIGURES.iter().enumerate() {
        let lx = LEFT + i as f64 * 260.0;
        let _ = writeln!(svg, r#"<circle cx="{}" cy="38" r="4" fill="{colour}"/>"#, lx + 4.0);
        let _ = writeln!(svg, r#"<text x="{}" y="42">{name}</text>"#, lx + 12.0);
    }
    for tick in TICKS_MS {
        let tx = x(tick);
        let _ = writeln!(svg, r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{bottom}" stroke="#ddd"/>"##);
        let _ = writeln!(svg, r#"<text x="{tx:.1}" y="{}" text-anchor="middle">{}</text>"#, bottom + 16.0, label(tick));
    }
    for (goal, text) in [(300.0, "goal: graceful < 300 ms"), (2000.0, "goal: crash < 2 s")] {
        let gx = x(goal);
        let _ = writeln!(
            svg,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#2ca02c" stroke-dasharray="4 3"/>"##
        );
        let _ = writeln!(
            svg,
            r##"<text x="{gx:.1}" y="{}" text-anchor="middle" fill="#2ca02c">{text}</text>"##,
            bottom + 34.0
        );
    }
    let mut row = 0;
    for s in series {
        for (_, colour, figure) in FIGURES {
            let y = TOP + row as f64 * ROW + ROW / 2.0;
            if row % 2 == 0 {
                let _ = writeln!(
                    svg,
                    r##"<rect x="0" y="{:.1}" width="{WIDTH}" height="{}" fill="#f6f6f6"/>"##,
                    y - ROW / 2.0,
                    ROW * 2.0
                );
            }
            let text = if row % 2 == 0 { s.label() } else { String::new() };
            let _ = writeln!(svg, r#"<text x="8" y="{:.1}">{}</text>"#, y + 4.0, escape(&text));
            let samples = s.samples(figure);
            for sample in &samples {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{y:.1}" r="3" fill="{colour}" fill-opacity="0.45"/>"#,
                    x(ms(*sample))
                );
            }
            // The median a bar, the p95 a tick.
            for (quantile, half_height, width) in [(0.5, 9.0, 3.0), (0.95, 6.0, 1.5)] {
                if let Some(at) = percentile(&samples, quantile) {
                    let mx = x(ms(at));
                    let _ = writeln!(
                        svg,
                        r#"<line x1="{mx:.1}" y1="{:.1}" x2="{mx:.1}" y2="{:.1}" stroke="{colour}" stroke-width="{width}"/>"#,
                        y - half_height,
                        y + half_height
                    );
                }
            }
            let missing = s.runs.len() - samples.len();
            if missing > 0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{missing} runs: none within the run's 20 s</text>"#,
                    x(AXIS_MS.1) - 220.0,
                    y + 4.0
                );
            }
            row += 1;
        }
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
