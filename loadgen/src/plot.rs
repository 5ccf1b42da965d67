//! The latency percentile plot written beside `--json`: one SVG with a line per histogram,
//! latency (ms, linear) over percentile on HdrHistogram's log axis (1/(1-p): 0%, 90%, 99%,
//! 99.9%, ...), so a result can be looked at as well as read. Hand-written SVG: a plotting
//! crate would outweigh the 100 lines.

use std::fmt::Write;

use crate::report::Report;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// The SVG document for `report`'s histograms.
pub fn latency_svg(report: &Report) -> String {
    // Points as (log10 of 1/(1-p), latency in ms) per histogram.
    let series: Vec<(&str, Vec<(f64, f64)>)> = report
        .histograms
        .iter()
        .map(|(name, histogram)| {
            let points = histogram
                .iter_quantiles(5)
                .map(|step| {
                    let quantile = step.quantile_iterated_to().min(0.999_999);
                    (
                        (1.0 / (1.0 - quantile)).log10(),
                        step.value_iterated_to() as f64 / 1_000.0,
                    )
                })
                .collect();
            (name.as_str(), points)
        })
        .collect();
    let x_max = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .ceil();
    let y_max = nice_ceiling(
        series
            .iter()
            .flat_map(|(_, points)| points.iter().map(|p| p.1))
            .fold(0.001f64, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="14">Latency by percentile ({})</text>"#,
        title(report)
    );
    // Axes and grid.
    for decade in 0..=(x_max as u32) {
        let xv = x(f64::from(decade));
        let label = percentile_label(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{xv:.1}" y1="{TOP}" x2="{xv:.1}" y2="{:.1}" stroke="#ddd"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0
        );
    }
    for tick in 0..=5 {
        let value = y_max * f64::from(tick) / 5.0;
        let yv = y(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yv:.1}" x2="{:.1}" y2="{yv:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yv + 4.0,
            format_ms(value)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="18" y="{:.1}" transform="rotate(-90 18 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    for (index, (name, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 20.0 * index as f64 + 10.0;
        let lx = LEFT + plot_w + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn title(report: &Report) -> String {
    let config = &report.config;
    format!(
        "{}, {} partitions, {} B, acks={}",
        config.mode, config.partitions, config.message_size, config.acks
    )
}

/// The percentile at 10^decade on the 1/(1-p) axis: 0%, 90%, 99%, 99.9%, ...
fn percentile_label(decade: u32) -> String {
    match decade {
        0 => "0%".to_string(),
        1 => "90%".to_string(),
        _ => format!("99.{}%", "9".repeat(decade as usize - 2)),
    }
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * power)
}

fn format_ms(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}")
    } else if value >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_helpers() {
        assert_eq!(percentile_label(0), "0%");
        assert_eq!(percentile_label(1), "90%");
        assert_eq!(percentile_label(4), "99.99%");
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
    }
}
