//! `plot`: renders the side-by-side figures (`scripts/bench` writes their data) as SVG charts:
//! latency against publish rate, and memory per connection against connections.

use anyhow::Context;
use clap::Args;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `plot`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PlotArgs {
    /// The plot data written by `scripts/bench` (`target/bench/plot-data.json`).
    #[arg(long)]
    data: PathBuf,
    /// Directory to write the SVG files into.
    #[arg(long)]
    out: PathBuf,
}

/// Series per server: `[x, y…]` points.
#[derive(Debug, Deserialize)]
struct PlotData {
    /// Server → `[rate, p50_ms, p99_ms]` per knee step.
    latency_vs_rate: BTreeMap<String, Vec<[f64; 3]>>,
    /// Server → `[connections, KiB per connection]`.
    rss_vs_connections: BTreeMap<String, Vec<[f64; 2]>>,
}

/// One line of a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

/// One color per server, the same in every chart.
fn color_of(server: &str) -> RGBColor {
    match server {
        "herald" => RGBColor(0x1f, 0x6f, 0xd9),
        "laravel-echo-server" => RGBColor(0xd9, 0x48, 0x1f),
        "floor" => RGBColor(0x70, 0x70, 0x70),
        _ => RGBColor(0x3a, 0x9a, 0x3a),
    }
}

/// The vertical axis: logarithmic (latency spans decades) or linear from zero.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scale {
    Log,
    LinearFromZero,
}

/// Renders every chart; returns the files written.
pub(crate) fn run(args: PlotArgs) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let data: PlotData = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not plot data from scripts/bench",
            args.data.display()
        )
    })?;
    std::fs::create_dir_all(&args.out)?;

    let mut latency = Vec::new();
    for (server, steps) in &data.latency_vs_rate {
        latency.push(Series {
            name: format!("{server} p99"),
            points: steps.iter().map(|s| (s[0], s[2])).collect(),
            dashed: false,
        });
        latency.push(Series {
            name: format!("{server} p50"),
            points: steps.iter().map(|s| (s[0], s[1])).collect(),
            dashed: true,
        });
    }
    let memory: Vec<Series> = data
        .rss_vs_connections
        .iter()
        .map(|(server, points)| Series {
            name: server.clone(),
            points: points.iter().map(|p| (p[0], p[1])).collect(),
            dashed: false,
        })
        .collect();

    let latency_file = args.out.join("latency-vs-rate.svg");
    chart(
        &latency_file,
        "Fan-out latency vs publish rate (1,000 subscribers)",
        "publishes per second",
        "latency (ms)",
        &latency,
        Scale::Log,
    )?;
    let memory_file = args.out.join("rss-vs-connections.svg");
    chart(
        &memory_file,
        "Resident memory per idle connection",
        "connections",
        "KiB per connection",
        &memory,
        Scale::LinearFromZero,
    )?;
    Ok(vec![latency_file, memory_file])
}

/// A line chart of `series` over a logarithmic x axis, one color per server (p50 dashed).
fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    scale: Scale,
) -> anyhow::Result<()> {
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, 1.0f64, f64::MAX, 1.0f64);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if x_min == f64::MAX {
        (x_min, y_min) = (1.0, 1.0);
    }
    let x_range = (x_min * 0.8).max(0.1)..x_max * 1.25;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64);
    match scale {
        Scale::Log => {
            let y_range = (y_min * 0.5).max(0.01)..y_max * 2.0;
            let chart = builder
                .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
                .map_err(draw_error)?;
            draw(chart, x_label, y_label, series)
        }
        Scale::LinearFromZero => {
            let chart = builder
                .build_cartesian_2d(x_range.log_scale(), 0.0..y_max * 1.25)
                .map_err(draw_error)?;
            draw(chart, x_label, y_label, series)
        }
    }?;
    root.present().map_err(draw_error)?;
    Ok(())
}

/// Mesh, lines, points and legend on a built chart.
fn draw<'a, X, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(8)
        .y_labels(8)
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .draw()
        .map_err(draw_error)?;
    for line in series {
        let color = color_of(line.name.split(' ').next().unwrap_or_default());
        let style = ShapeStyle::from(&color).stroke_width(if line.dashed { 1 } else { 2 });
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                6,
                4,
                style,
            ))
        } else {
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style))
        }
        .map_err(draw_error)?;
        drawn
            .label(line.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

fn draw_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_from_plot_data() {
        let dir = std::env::temp_dir().join(format!("herald-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let data = dir.join("plot-data.json");
        std::fs::write(
            &data,
            r#"{"latency_vs_rate": {"herald": [[25, 1.0, 2.0], [50, 1.5, 3.0]], "laravel-echo-server": [[25, 4.0, 9.0]]},
                "rss_vs_connections": {"herald": [[1000, 20.0], [10000, 19.5]]}}"#,
        )
        .expect("write");
        let files = run(PlotArgs {
            data,
            out: dir.clone(),
        })
        .expect("plot");
        for file in files {
            let svg = std::fs::read_to_string(&file).expect("svg");
            assert!(svg.starts_with("<svg"), "{} is an SVG", file.display());
            assert!(svg.contains("herald"), "{} has a legend", file.display());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
