//! The report's charts, drawn by plotters into SVG strings that the page
//! inlines. Bars run horizontally so long labels (provider / model) stay
//! readable at phone width; every chart scales with its container (viewBox).

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordi32};
use plotters::prelude::*;

/// Narrow enough that text stays legible when a phone scales a chart down.
const WIDTH: u32 = 480;
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(43, 108, 176);
const ORANGE: RGBColor = RGBColor(221, 107, 32);
const GREY: RGBColor = RGBColor(160, 174, 192);
const INK: RGBColor = RGBColor(45, 55, 72);
/// Line and group colours, distinct for the few providers a GM uses.
pub const SERIES: [RGBColor; 8] = [
    RGBColor(43, 108, 176),
    RGBColor(221, 107, 32),
    RGBColor(56, 161, 105),
    RGBColor(197, 48, 48),
    RGBColor(128, 90, 213),
    RGBColor(183, 121, 31),
    RGBColor(49, 151, 149),
    RGBColor(113, 128, 150),
];

/// How a bar stands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Normal,
    /// The optimal range, the chosen model.
    Highlight,
    /// Baselines.
    Muted,
}

impl Tone {
    fn color(self) -> RGBColor {
        match self {
            Tone::Normal => BLUE,
            Tone::Highlight => ORANGE,
            Tone::Muted => GREY,
        }
    }
}

/// One bar: its label, its value (none for an empty group) and interval.
#[derive(Clone, Debug)]
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
    pub interval: Option<(f64, f64)>,
    pub tone: Tone,
}

fn svg(
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

fn plot_error<E: std::error::Error>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Room for the longest label at the font size used.
fn label_area(labels: impl Iterator<Item = usize>) -> u32 {
    let longest = labels.max().unwrap_or(4) as u32;
    (longest * 7 + 12).clamp(40, 220)
}

/// An axis range that holds every value and zero, with a little air.
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.06;
    if lo < 0.0 {
        lo -= pad;
    }
    hi += pad;
    (lo, hi)
}

fn short_number(v: f64) -> String {
    // No "-0.00" on an axis.
    let v = if v.abs() < 0.005 { 0.0 } else { v };
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Horizontal-bar axes: values along x from `lo` to `hi`, one band per label
/// down y (the first label on top), mesh and labels drawn.
type BarChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordi32>>>;

fn bar_axes<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    axis: &str,
    labels: &[String],
    (lo, hi): (f64, f64),
) -> Result<BarChart<'a, 'b>> {
    let n = labels.len().max(1) as i32;
    let mut chart = ChartBuilder::on(root)
        .margin(8)
        .caption(title, (FONT, 17))
        .x_label_area_size(34)
        .y_label_area_size(label_area(labels.iter().map(String::len)))
        .build_cartesian_2d(lo..hi, (0..n).into_segmented())
        .map_err(plot_error)?;
    let label_of = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) if (0..n).contains(i) => labels
            .get((n - 1 - i) as usize)
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .disable_y_mesh()
        .y_labels(n as usize)
        .y_label_formatter(&label_of)
        .x_label_formatter(&|v| short_number(*v))
        .x_desc(axis)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// Horizontal bars, first bar on top, with interval whiskers where given.
pub fn bars(title: &str, axis: &str, bars: &[Bar]) -> Result<String> {
    let n = bars.len().max(1) as i32;
    let height = 70 + 26 * n as u32;
    let (lo, hi) = value_range(
        bars.iter()
            .flat_map(|b| [b.value, b.interval.map(|i| i.0), b.interval.map(|i| i.1)])
            .flatten(),
    );
    let row = |i: usize| n - 1 - i as i32;
    svg(height, |root| {
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut chart = bar_axes(root, title, axis, &labels, (lo, hi))?;
        chart
            .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
                let v = b.value?;
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row(i))),
                        (v, SegmentValue::Exact(row(i) + 1)),
                    ],
                    b.tone.color().filled(),
                );
                r.set_margin(4, 4, 0, 0);
                Some(r)
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
                let (low, high) = b.interval?;
                Some(ErrorBar::new_horizontal(
                    SegmentValue::CenterOf(row(i)),
                    low,
                    b.value?,
                    high,
                    INK.stroke_width(2),
                    10,
                ))
            }))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Horizontal bars in groups: one group per label, one bar per series, in
/// the [`SERIES`] colours (the caller's caption names them).
pub fn grouped_bars(
    title: &str,
    axis: &str,
    labels: &[String],
    series: &[Vec<f64>],
) -> Result<String> {
    let n = labels.len().max(1) as i32;
    let k = series.len().max(1) as u32;
    let per_group = 14 * k + 14;
    let height = 100 + per_group * n as u32;
    let (lo, hi) = value_range(series.iter().flat_map(|v| v.iter().copied()));
    svg(height, |root| {
        let mut chart = bar_axes(root, title, axis, labels, (lo, hi))?;
        let segment = chart.plotting_area().dim_in_pixel().1 / n as u32;
        let slot = segment.saturating_sub(8) / k;
        for (j, values) in series.iter().enumerate() {
            let color = SERIES[j % SERIES.len()];
            let top = 4 + slot * j as u32;
            let bottom = segment.saturating_sub(top + slot);
            chart
                .draw_series(values.iter().enumerate().map(|(i, &v)| {
                    let y = n - 1 - i as i32;
                    let mut r = Rectangle::new(
                        [
                            (0.0, SegmentValue::Exact(y)),
                            (v, SegmentValue::Exact(y + 1)),
                        ],
                        color.filled(),
                    );
                    r.set_margin(top, bottom, 0, 0);
                    r
                }))
                .map_err(plot_error)?;
        }
        Ok(())
    })
}

/// One line per series over `x`, with a formatter for the x labels. One
/// plotters chart from axes to legend, read top to bottom (~80 lines).
pub fn lines(
    title: &str,
    x_axis: &str,
    y_axis: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &dyn Fn(f64) -> String,
    diagonal: bool,
) -> Result<String> {
    let points = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (mut x0, mut x1) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
        (a.min(x), b.max(x))
    });
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let (mut y0, mut y1) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
        (a.min(y), b.max(y))
    });
    if diagonal {
        (y0, y1) = (y0.min(x0), y1.max(x1));
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.08).max(0.01);
    let (y0, y1) = (y0 - pad, y1 + pad);
    svg(340, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(title, (FONT, 17))
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_labels(6)
            .x_label_formatter(&|v| x_label(*v))
            .y_label_formatter(&|v| short_number(*v))
            .x_desc(x_axis)
            .y_desc(y_axis)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(plot_error)?;
        if diagonal {
            let (a, b) = (x0.max(y0), x1.min(y1));
            chart
                .draw_series(LineSeries::new([(a, a), (b, b)], GREY.stroke_width(1)))
                .map_err(plot_error)?
                .label("perfect calibration")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREY));
        }
        for (j, (name, p)) in series.iter().enumerate() {
            let color = SERIES[j % SERIES.len()];
            chart
                .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))
                .map_err(plot_error)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            if p.len() <= 60 {
                chart
                    .draw_series(p.iter().map(|&xy| Circle::new(xy, 3, color.filled())))
                    .map_err(plot_error)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Predicted against actual, with the diagonal a perfect model would sit on.
pub fn scatter(title: &str, points: &[(f64, f64)]) -> Result<String> {
    let (lo, hi) = points
        .iter()
        .flat_map(|&(a, p)| [a, p])
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let pad = (hi - lo) * 0.03;
    let (lo, hi) = (lo - pad, hi + pad);
    svg(380, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(title, (FONT, 17))
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc("actual")
            .y_desc("predicted")
            .x_label_formatter(&|v| short_number(*v))
            .y_label_formatter(&|v| short_number(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(a, p)| Circle::new((a, p), 2, BLUE.mix(0.35).filled())),
            )
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                [(lo, lo), (hi, hi)],
                ORANGE.stroke_width(2),
            ))
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Counts per bin: `edges` has one more element than `counts`.
pub fn histogram(title: &str, axis: &str, edges: &[f64], counts: &[u64]) -> Result<String> {
    let (x0, x1) = match (edges.first(), edges.last()) {
        (Some(&a), Some(&b)) if b > a => (a, b),
        _ => (0.0, 1.0),
    };
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.08;
    svg(300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .caption(title, (FONT, 17))
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .disable_x_mesh()
            .x_desc(axis)
            .y_desc("rows")
            .x_label_formatter(&|v| short_number(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let mut r =
                    Rectangle::new([(edges[i], 0.0), (edges[i + 1], c as f64)], BLUE.filled());
                r.set_margin(0, 0, 1, 1);
                r
            }))
            .map_err(plot_error)?;
        Ok(())
    })
}
