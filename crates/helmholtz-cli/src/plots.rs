//! PNG figures for `helmholtz plot` and `helmholtz sample`: learning curves, image grids of model
//! samples, first-layer receptive fields, and the `metrics.jsonl` reader that feeds the curves.
//!
//! Everything here writes a finished PNG to a path and returns `anyhow::Result<()>` whose error names
//! that path. Charts are drawn into memory with plotters' [`BitMapBackend`] and saved with the `image`
//! crate, so a failed draw never leaves a half-written file behind.
//!
//! Text (titles, axis labels, tick labels, legends) is rendered by plotters' `ttf` feature, which asks
//! fontconfig for a system sans-serif font. On a machine without fonts plotters reports
//! `backend error: Font loading error: No such font: sans-serif normal`; [`line_chart`] then prints one
//! warning and draws the chart again without any text rather than failing. The image grids draw no
//! text and need no font.
//!
//! (Over 700 lines on purpose: every figure the commands draw lives here, drawing only, so the
//! command files stay short; the last 300 lines are tests.)

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use anyhow::{Context, bail};
use image::{GrayImage, ImageFormat, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Width of a [`line_chart`] in pixels.
pub const CHART_WIDTH: u32 = 900;
/// Height of a [`line_chart`] in pixels.
pub const CHART_HEIGHT: u32 = 600;

/// Series with at most this many finite points get a marker at each point.
const MARKER_MAX_POINTS: usize = 30;

/// Grey level (0 = black, 255 = white) of the separators between tiles of an image grid.
const SEPARATOR_GREY: u8 = 64;

/// Line colours, one per series in order, repeating after ten (the "Tableau 10" palette, chosen to
/// stay distinguishable for the common forms of colour blindness).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One named curve of a [`line_chart`]: a learning curve of one run, or one metric of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry, e.g. the run name or `"test nll"`. An empty label is shown as `series N`.
    pub label: String,
    /// `(x, y)` points in drawing order (not sorted). Points with a NaN or infinite coordinate are
    /// skipped, and the line joins the finite points either side of them; coordinates beyond
    /// ±1e300 are drawn at ±1e300.
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` as a 900×600 PNG line chart at `out`, for the learning curves of one run or to
/// compare several runs (`helmholtz plot RUN... -o FILE.png`).
///
/// Each series gets its own colour (ten colours, then they repeat) and a legend entry; a series
/// with at most 30 finite points also gets a marker at each point. The axes are fitted to the
/// finite points of all series with a small margin. Non-finite points are skipped; when nothing
/// finite is left (or `series` is empty) the chart is still written, with empty axes and a
/// "no finite data" note, so a script that plots every run never stops at an empty one.
///
/// If no system font can be found, a warning is printed once per process and the chart is drawn
/// without title, tick labels, axis labels or legend.
///
/// # Errors
/// When the PNG cannot be written (e.g. the directory of `out` does not exist), or drawing fails
/// for a reason other than text rendering.
pub fn line_chart(
    series: &[Series],
    title: &str,
    x_label: &str,
    y_label: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let data = ChartData::new(series);
    let labels = ChartLabels {
        title,
        x_label,
        y_label,
    };
    let mut buffer = vec![0u8; CHART_WIDTH as usize * CHART_HEIGHT as usize * 3];

    // Drawing into memory can only fail on text, so any failure means: try again without it.
    if let Err(text_error) = draw_line_chart(&mut buffer, &data, &labels, TextMode::Draw) {
        warn_no_text(&text_error);
        buffer.fill(0);
        draw_line_chart(&mut buffer, &data, &labels, TextMode::Skip)
            .with_context(|| format!("drawing chart {}", out.display()))?;
    }

    let image = RgbImage::from_raw(CHART_WIDTH, CHART_HEIGHT, buffer)
        .context("chart buffer has the wrong size")?;
    image
        .save_with_format(out, ImageFormat::Png)
        .with_context(|| format!("writing chart {}", out.display()))
}

/// Tiles `images` into one grey-level PNG at `out`, for samples drawn from a model.
///
/// Each image is `height × width` values in row-major order, 0 = black and 1 = white; values
/// outside `[0, 1]` are clamped and NaN is drawn black. Images fill a grid row by row with
/// `min(columns, images.len())` columns; every tile is magnified `scale` times (nearest neighbour)
/// and framed by 1-pixel dark grey separators, which also fill the unused cells of the last row.
/// The PNG is therefore `c·(width·scale + 1) + 1` pixels wide for `c` columns, and likewise high.
///
/// # Errors
/// When `images` is empty, `height`, `width`, `columns` or `scale` is zero, an image does not have
/// `height × width` values, the grid would be too large for a PNG, or the file cannot be written.
pub fn image_grid(
    images: &[Vec<f32>],
    height: usize,
    width: usize,
    columns: usize,
    scale: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let grid = GridShape::new(images, height, width, columns, scale)
        .with_context(|| format!("drawing image grid {}", out.display()))?;
    let pixels = images.iter().map(|image| {
        image.iter().map(|&value| {
            if value.is_nan() {
                0.0
            } else {
                value.clamp(0.0, 1.0)
            }
        })
    });
    save_grid(&grid, pixels, out)
}

/// Tiles first-layer recognition weights into one grey-level PNG at `out`, one tile per hidden
/// unit (one row of `W`, reshaped to `height × width`), to see which input pattern each unit
/// responds to.
///
/// Unlike [`image_grid`], every tile is scaled to its own symmetric range: a weight `w` is drawn at
/// grey level `0.5 + 0.5 · w / max|w|`, so mid-grey is zero, white is the unit's largest excitatory
/// weight and black its largest inhibitory one. Tiles of all-zero (or all non-finite) weights are
/// uniformly mid-grey, and a non-finite weight is drawn as zero. Layout, magnification and
/// separators are as in [`image_grid`].
///
/// # Errors
/// As for [`image_grid`].
pub fn receptive_fields(
    weights: &[Vec<f32>],
    height: usize,
    width: usize,
    columns: usize,
    scale: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let grid = GridShape::new(weights, height, width, columns, scale)
        .with_context(|| format!("drawing receptive fields {}", out.display()))?;
    let pixels = weights.iter().map(|unit| {
        let max_abs = unit
            .iter()
            .filter(|value| value.is_finite())
            .fold(0.0f32, |max, value| max.max(value.abs()));
        unit.iter().map(move |&value| {
            if max_abs > 0.0 && value.is_finite() {
                0.5 + 0.5 * value / max_abs
            } else {
                0.5
            }
        })
    });
    save_grid(&grid, pixels, out)
}

/// Picks one curve out of [`helmholtz::run::read_metrics`] records: `(record[x_key], record[metric])` for every
/// record whose `"split"` field is the string `split` and whose `x_key` and `metric` fields are
/// both numbers, in record order. Records without those fields are skipped, not errors, since one
/// file mixes records of different kinds (e.g. `split = "train"` every step, `"test"` now and then).
pub fn metric_series(records: &[Value], split: &str, metric: &str, x_key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter(|record| record.get("split").and_then(Value::as_str) == Some(split))
        .filter_map(|record| {
            let x = record.get(x_key)?.as_f64()?;
            let y = record.get(metric)?.as_f64()?;
            Some((x, y))
        })
        .collect()
}

/// Whether a chart is drawn with its text or, when no font is available, without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextMode {
    Draw,
    Skip,
}

/// The text of a [`line_chart`].
struct ChartLabels<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
}

/// The series of a [`line_chart`] with non-finite points removed, and the axis ranges they need.
struct ChartData {
    /// `(legend label, finite points)` per input series.
    series: Vec<(String, Vec<(f64, f64)>)>,
    x_range: Range<f64>,
    y_range: Range<f64>,
    n_finite_points: usize,
}

impl ChartData {
    fn new(series: &[Series]) -> Self {
        let series: Vec<(String, Vec<(f64, f64)>)> = series
            .iter()
            .enumerate()
            .map(|(index, series)| {
                let points = finite_points(&series.points);
                let mut label = if series.label.is_empty() {
                    format!("series {}", index + 1)
                } else {
                    series.label.clone()
                };
                if points.is_empty() {
                    label.push_str(" (no finite data)");
                }
                (label, points)
            })
            .collect();
        let all_points = || series.iter().flat_map(|(_, points)| points.iter());
        let x_range = padded_range(all_points().map(|&(x, _)| x), 0.02);
        let y_range = padded_range(all_points().map(|&(_, y)| y), 0.05);
        let n_finite_points = all_points().count();
        Self {
            series,
            x_range,
            y_range,
            n_finite_points,
        }
    }
}

/// The points of `points` whose coordinates are both finite, each coordinate clamped to
/// ±[`AXIS_LIMIT`] so that it lies within the axes fitted by [`padded_range`] (plotters overflows
/// an `i32` mapping points far outside the axes to pixels).
fn finite_points(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let clamp = |value: f64| value.clamp(-AXIS_LIMIT, AXIS_LIMIT);
    points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| (clamp(x), clamp(y)))
        .collect()
}

/// Coordinates are clamped to ±this: plotters' tick placement loops forever on an axis whose
/// span overflows to infinity.
const AXIS_LIMIT: f64 = 1e300;

/// An axis range covering `values` (all finite) with `margin` (at most 0.5) of its span added on
/// each side; `0..1` when there are no values, and ±5 % around the value (±0.5 around zero) when
/// they are all equal or too close to tell apart on a chart.
///
/// The range always has a finite, not vanishingly small span, since plotters' tick placement
/// loops forever on a span that is infinite or underflows.
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> Range<f64> {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), value| {
        (min.min(value), max.max(value))
    });
    if min > max {
        return 0.0..1.0;
    }
    let (min, max) = (
        min.clamp(-AXIS_LIMIT, AXIS_LIMIT),
        max.clamp(-AXIS_LIMIT, AXIS_LIMIT),
    );
    let span = max - min;
    let middle = min / 2.0 + max / 2.0;
    if span <= middle.abs() * 1e-10 || span < 1e-100 {
        let half_width = if middle.abs() < 1e-100 {
            0.5
        } else {
            middle.abs() * 0.05
        };
        return middle - half_width..middle + half_width;
    }
    let pad = span * margin;
    min - pad..max + pad
}

/// Draws the chart into `buffer` (RGB, [`CHART_WIDTH`] × [`CHART_HEIGHT`]).
fn draw_line_chart(
    buffer: &mut [u8],
    data: &ChartData,
    labels: &ChartLabels<'_>,
    text: TextMode,
) -> anyhow::Result<()> {
    let root = BitMapBackend::with_buffer(buffer, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;

    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text == TextMode::Draw {
        if !labels.title.is_empty() {
            builder.caption(labels.title, ("sans-serif", 24));
        }
        builder.x_label_area_size(50).y_label_area_size(80);
    }
    let mut chart = builder.build_cartesian_2d(data.x_range.clone(), data.y_range.clone())?;

    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04));
    if text == TextMode::Draw {
        mesh.x_desc(labels.x_label)
            .y_desc(labels.y_label)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&format_tick)
            .y_label_formatter(&format_tick);
    }
    mesh.draw()?;

    for (index, (label, points)) in data.series.iter().enumerate() {
        let color = PALETTE[index % PALETTE.len()];
        let line = chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if text == TextMode::Draw {
            line.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        }
        if points.len() <= MARKER_MAX_POINTS {
            chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
    }

    if text == TextMode::Draw {
        if data.n_finite_points == 0 {
            let centre = (
                (data.x_range.start + data.x_range.end) / 2.0,
                (data.y_range.start + data.y_range.end) / 2.0,
            );
            let style = ("sans-serif", 20)
                .into_font()
                .color(&BLACK.mix(0.6))
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart
                .plotting_area()
                .draw(&Text::new("no finite data to plot", centre, style))?;
        }
        if !data.series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 14))
                .draw()?;
        }
    }

    root.present()?;
    Ok(())
}

/// A tick label: plain decimal without trailing zeros (`20000`, `0.25`) for magnitudes in
/// `[1e-4, 1e7)`, otherwise scientific with at most four significant digits (`1.5e7`).
fn format_tick(value: &f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 {
        return "0".to_string();
    }
    if (1e-4..1e7).contains(&magnitude) {
        let decimal = format!("{value:.6}");
        let trimmed = decimal.trim_end_matches('0').trim_end_matches('.');
        return if trimmed == "-0" {
            "0".to_string()
        } else {
            trimmed.to_string()
        };
    }
    let scientific = format!("{value:.3e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) => {
            let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
            format!("{mantissa}e{exponent}")
        }
        None => scientific,
    }
}

/// Tells the user, once per process, that charts are drawn without text and why.
fn warn_no_text(error: &anyhow::Error) {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        crate::err!(
            "warning: cannot draw chart text ({error:#}); is a sans-serif font installed \
             (fontconfig)? Drawing charts without titles, labels and legends."
        );
    });
}

/// The checked layout of an image grid.
struct GridShape {
    height: usize,
    width: usize,
    scale: usize,
    columns: usize,
    /// Size of the whole PNG in pixels.
    width_px: u32,
    height_px: u32,
}

impl GridShape {
    fn new(
        images: &[Vec<f32>],
        height: usize,
        width: usize,
        columns: usize,
        scale: usize,
    ) -> anyhow::Result<Self> {
        if images.is_empty() {
            bail!("no images to draw");
        }
        if height == 0 || width == 0 || columns == 0 || scale == 0 {
            bail!(
                "height ({height}), width ({width}), columns ({columns}) and scale ({scale}) \
                 must all be positive"
            );
        }
        let n_pixels = height * width;
        if let Some((index, image)) = images
            .iter()
            .enumerate()
            .find(|(_, image)| image.len() != n_pixels)
        {
            bail!(
                "image {index} has {} values, expected {height}×{width} = {n_pixels}",
                image.len()
            );
        }
        let columns = columns.min(images.len());
        let rows = images.len().div_ceil(columns);
        // Each of `count` tiles of `size` pixels is followed by a separator, plus one before the first.
        let extent = |count: usize, size: usize| -> Option<u32> {
            let total = size
                .checked_mul(scale)?
                .checked_add(1)?
                .checked_mul(count)?;
            u32::try_from(total.checked_add(1)?).ok()
        };
        let (Some(width_px), Some(height_px)) = (extent(columns, width), extent(rows, height))
        else {
            bail!(
                "a grid of {rows}×{columns} images of {height}×{width} pixels at scale {scale} \
                 is too large"
            );
        };
        Ok(Self {
            height,
            width,
            scale,
            columns,
            width_px,
            height_px,
        })
    }
}

/// Paints the tiles (grey levels in `[0, 1]`, row-major) into a grid and saves it as a PNG.
fn save_grid<Tile, Pixels>(grid: &GridShape, tiles: Tile, out: &Path) -> anyhow::Result<()>
where
    Tile: Iterator<Item = Pixels>,
    Pixels: Iterator<Item = f32>,
{
    let mut canvas =
        GrayImage::from_pixel(grid.width_px, grid.height_px, image::Luma([SEPARATOR_GREY]));
    let tile_width = grid.width * grid.scale + 1;
    let tile_height = grid.height * grid.scale + 1;
    for (index, pixels) in tiles.enumerate() {
        let left = 1 + (index % grid.columns) * tile_width;
        let top = 1 + (index / grid.columns) * tile_height;
        for (pixel_index, value) in pixels.enumerate() {
            let grey = image::Luma([(value * 255.0).round() as u8]);
            let row = top + (pixel_index / grid.width) * grid.scale;
            let column = left + (pixel_index % grid.width) * grid.scale;
            for y in row..row + grid.scale {
                for x in column..column + grid.scale {
                    // In range: GridShape::new checked that the whole grid fits in u32.
                    canvas.put_pixel(x as u32, y as u32, grey);
                }
            }
        }
    }
    canvas
        .save_with_format(out, ImageFormat::Png)
        .with_context(|| format!("writing image grid {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A file in the temp dir that no other test (or concurrent test run) uses; removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            Self(
                std::env::temp_dir().join(format!("helmholtz-plots-{}-{name}", std::process::id())),
            )
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn read_png(path: &Path) -> image::DynamicImage {
        image::ImageReader::open(path)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .decode()
            .unwrap()
    }

    fn curve(label: &str, n: usize) -> Series {
        Series {
            label: label.to_string(),
            points: (0..n)
                .map(|step| (step as f64 * 100.0, 200.0 / (1.0 + step as f64)))
                .collect(),
        }
    }

    #[test]
    fn line_chart_writes_a_900_by_600_png() {
        let out = TempFile::new("chart.png");
        let series = [curve("wake-sleep", 50), curve("rws", 12)];
        line_chart(&series, "test NLL", "step", "nats", &out.0).unwrap();
        let image = read_png(&out.0);
        assert_eq!((image.width(), image.height()), (CHART_WIDTH, CHART_HEIGHT));
    }

    #[test]
    fn line_chart_draws_without_text() {
        // The fallback used when no font is installed.
        let data = ChartData::new(&[curve("a", 5)]);
        let labels = ChartLabels {
            title: "t",
            x_label: "x",
            y_label: "y",
        };
        let mut buffer = vec![0u8; CHART_WIDTH as usize * CHART_HEIGHT as usize * 3];
        draw_line_chart(&mut buffer, &data, &labels, TextMode::Skip).unwrap();
        // The series colour appears somewhere.
        let blue = [PALETTE[0].0, PALETTE[0].1, PALETTE[0].2];
        assert!(buffer.chunks_exact(3).any(|pixel| pixel == blue));
    }

    #[test]
    fn line_chart_skips_non_finite_points() {
        let series = Series {
            label: "with gaps".to_string(),
            points: vec![
                (0.0, 1.0),
                (1.0, f64::NAN),
                (f64::INFINITY, 2.0),
                (2.0, 3.0),
                (f64::NAN, f64::NEG_INFINITY),
            ],
        };
        let data = ChartData::new(std::slice::from_ref(&series));
        assert_eq!(data.series[0].1, vec![(0.0, 1.0), (2.0, 3.0)]);
        assert_eq!(data.n_finite_points, 2);
        // Ranges come from the finite points only: 0..2 padded by 2 %, 1..3 padded by 5 %.
        assert!((data.x_range.start + 0.04).abs() < 1e-12);
        assert!((data.x_range.end - 2.04).abs() < 1e-12);
        assert!((data.y_range.start - 0.9).abs() < 1e-12);
        assert!((data.y_range.end - 3.1).abs() < 1e-12);

        let out = TempFile::new("gaps.png");
        line_chart(&[series], "gaps", "x", "y", &out.0).unwrap();
        assert_eq!(read_png(&out.0).width(), CHART_WIDTH);
    }

    #[test]
    fn line_chart_without_finite_data_writes_an_empty_chart() {
        let all_nan = Series {
            label: String::new(),
            points: vec![(f64::NAN, 1.0), (2.0, f64::INFINITY)],
        };
        let data = ChartData::new(std::slice::from_ref(&all_nan));
        assert_eq!(data.series[0].0, "series 1 (no finite data)");
        assert_eq!(
            (data.x_range.clone(), data.y_range.clone()),
            (0.0..1.0, 0.0..1.0)
        );

        let out = TempFile::new("all-nan.png");
        line_chart(&[all_nan], "nothing", "x", "y", &out.0).unwrap();
        assert_eq!(read_png(&out.0).height(), CHART_HEIGHT);

        let out = TempFile::new("no-series.png");
        line_chart(&[], "", "", "", &out.0).unwrap();
        assert_eq!(read_png(&out.0).height(), CHART_HEIGHT);
    }

    #[test]
    fn line_chart_handles_constant_and_extreme_values() {
        let out = TempFile::new("extreme.png");
        let series = [
            Series {
                label: "one point".to_string(),
                points: vec![(3.0, -7.0)],
            },
            Series {
                label: "huge".to_string(),
                points: vec![(0.0, -f64::MAX), (1.0, f64::MAX)],
            },
            Series {
                label: "tiny".to_string(),
                points: vec![(1e16, 1e-320), (1e16 + 2.0, 2e-320)],
            },
        ];
        line_chart(&series, "extreme", "x", "y", &out.0).unwrap();
        assert_eq!(read_png(&out.0).width(), CHART_WIDTH);
    }

    #[test]
    fn tick_labels_are_short() {
        let labels: Vec<String> = [
            0.0,
            20000.0,
            0.25,
            -1.5,
            0.30000000000000004,
            1.5e7,
            -2.5e-6,
        ]
        .iter()
        .map(format_tick)
        .collect();
        assert_eq!(
            labels,
            ["0", "20000", "0.25", "-1.5", "0.3", "1.5e7", "-2.5e-6"]
        );
    }

    #[test]
    fn padded_range_widens_degenerate_ranges() {
        assert_eq!(padded_range([5.0, 5.0].into_iter(), 0.05), 4.75..5.25);
        assert_eq!(padded_range([0.0].into_iter(), 0.05), -0.5..0.5);
        assert_eq!(padded_range(std::iter::empty(), 0.05), 0.0..1.0);
        assert_eq!(padded_range([0.0, 10.0].into_iter(), 0.1), -1.0..11.0);
        // Spans plotters cannot place ticks on: infinite, underflowing, or below f64 resolution.
        for values in [
            [-f64::MAX, f64::MAX],
            [1e-320, 2e-320],
            [1e16, 1e16 + 2.0],
            [f64::MAX, f64::MAX],
        ] {
            let range = padded_range(values.into_iter(), 0.05);
            let span = range.end - range.start;
            assert!(span.is_finite() && span > range.start.abs().max(range.end.abs()) * 1e-10);
        }
    }

    #[test]
    fn line_chart_error_names_the_file() {
        let out = std::env::temp_dir()
            .join("helmholtz-plots-no-such-dir")
            .join("chart.png");
        let error = line_chart(&[curve("a", 3)], "t", "x", "y", &out).unwrap_err();
        assert!(format!("{error:#}").contains("chart.png"), "{error:#}");
    }

    #[test]
    fn image_grid_has_the_documented_size_and_pixels() {
        let out = TempFile::new("grid.png");
        // Five 3×4 images in 2 columns at scale 3: 3 rows of tiles 12 wide and 9 high.
        let mut images = vec![vec![1.0f32; 12]; 5];
        images[1] = vec![
            -1.0,
            0.5,
            2.0,
            f32::NAN,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ];
        image_grid(&images, 3, 4, 2, 3, &out.0).unwrap();
        let image = read_png(&out.0).into_luma8();
        assert_eq!(
            image.dimensions(),
            (2 * (4 * 3 + 1) + 1, 3 * (3 * 3 + 1) + 1)
        );
        assert_eq!(image.get_pixel(0, 0).0, [SEPARATOR_GREY]);
        assert_eq!(image.get_pixel(1, 1).0, [255]);
        assert_eq!(image.get_pixel(3, 3).0, [255]);
        assert_eq!(image.get_pixel(13, 5).0, [SEPARATOR_GREY]);
        // Second tile starts at x = 14: -1 → 0, 0.5 → 128, 2 → 255, NaN → 0.
        let second_tile_row: Vec<u8> = [14, 17, 20, 23].map(|x| image.get_pixel(x, 1).0[0]).into();
        assert_eq!(second_tile_row, vec![0, 128, 255, 0]);
        // The unused sixth cell is separator grey.
        assert_eq!(image.get_pixel(20, 25).0, [SEPARATOR_GREY]);
    }

    #[test]
    fn image_grid_uses_fewer_columns_for_few_images() {
        let out = TempFile::new("few.png");
        image_grid(&[vec![0.5; 4]], 2, 2, 10, 1, &out.0).unwrap();
        assert_eq!(read_png(&out.0).into_luma8().dimensions(), (4, 4));
    }

    #[test]
    fn image_grid_rejects_bad_shapes() {
        let out = TempFile::new("bad.png");
        let error = image_grid(&[vec![0.0; 4], vec![0.0; 3]], 2, 2, 2, 1, &out.0).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("image 1 has 3 values"), "{message}");
        assert!(message.contains("bad.png"), "{message}");
        assert!(image_grid(&[], 2, 2, 2, 1, &out.0).is_err());
        assert!(image_grid(&[vec![0.0; 4]], 2, 2, 0, 1, &out.0).is_err());
        assert!(image_grid(&[vec![0.0; 4]], 2, 2, 1, 0, &out.0).is_err());
        assert!(image_grid(&[vec![0.0; 4]], 2, 2, 1, usize::MAX, &out.0).is_err());
        assert!(!out.0.exists());
    }

    #[test]
    fn receptive_fields_scale_each_unit_symmetrically() {
        let out = TempFile::new("fields.png");
        let weights = vec![
            vec![-2.0, 0.0, 1.0, 2.0],
            vec![0.0; 4],
            vec![0.1, f32::NAN, -0.05, 0.0],
        ];
        receptive_fields(&weights, 2, 2, 3, 2, &out.0).unwrap();
        let image = read_png(&out.0).into_luma8();
        assert_eq!(image.dimensions(), (3 * (2 * 2 + 1) + 1, 2 * 2 + 2));
        let tile = |column: u32| -> Vec<u8> {
            let left = 1 + column * 5;
            [(left, 1), (left + 2, 1), (left, 3), (left + 2, 3)]
                .map(|(x, y)| image.get_pixel(x, y).0[0])
                .into()
        };
        assert_eq!(tile(0), vec![0, 128, 191, 255]);
        assert_eq!(tile(1), vec![128; 4]);
        assert_eq!(tile(2), vec![255, 128, 64, 128]);
    }

    #[test]
    fn read_metrics_parses_lines_and_names_bad_ones() {
        let file = TempFile::new("metrics.jsonl");
        std::fs::write(
            &file.0,
            "{\"split\":\"train\",\"step\":1,\"loss\":3.5}\n\n\
             {\"split\":\"test\",\"step\":1,\"nll\":90.0}\n\
             {\"split\":\"train\",\"step\":2,\"loss\":3.0}\n   \n\
             {\"split\":\"train\",\"step\":3}\n\
             {\"split\":\"train\",\"step\":4,\"loss\":null}\n\
             {\"split\":\"train\",\"step\":\"5\",\"loss\":2.0}\n",
        )
        .unwrap();
        let records = helmholtz::run::read_metrics(&file.0).unwrap();
        assert_eq!(records.len(), 6);
        assert_eq!(
            metric_series(&records, "train", "loss", "step"),
            vec![(1.0, 3.5), (2.0, 3.0)]
        );
        assert_eq!(
            metric_series(&records, "test", "nll", "step"),
            vec![(1.0, 90.0)]
        );
        assert!(metric_series(&records, "valid", "nll", "step").is_empty());

        std::fs::write(&file.0, "{\"split\":\"train\"}\n\n{\"split\": oops}\n").unwrap();
        let message = format!("{:#}", helmholtz::run::read_metrics(&file.0).unwrap_err());
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("metrics.jsonl"), "{message}");

        std::fs::write(&file.0, "[1, 2]\n").unwrap();
        let message = format!("{:#}", helmholtz::run::read_metrics(&file.0).unwrap_err());
        assert!(
            message.contains("line 1") && message.contains("not a JSON object"),
            "{message}"
        );
    }

    #[test]
    fn read_metrics_of_a_missing_file_names_it() {
        let missing = std::env::temp_dir().join("helmholtz-plots-missing-metrics.jsonl");
        let message = format!("{:#}", helmholtz::run::read_metrics(&missing).unwrap_err());
        assert!(
            message.contains("helmholtz-plots-missing-metrics.jsonl"),
            "{message}"
        );
    }
}
