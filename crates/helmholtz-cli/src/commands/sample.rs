//! `helmholtz sample RUN`: model samples as an image grid; a vi run's posterior draws as CSV.

use std::path::Path;

use anyhow::{Result, bail};
use helmholtz::run::Run;

use crate::{out, plots};

/// The largest grid drawn, in pixels (a 16k × 16k grey image, 256 MiB).
const MAX_PIXELS: usize = 1 << 28;

/// Draws `n` samples of the run's model with `seed` into the PNG `output`, which must end in
/// `.png` and must not exist unless `force`.
pub fn run(dir: &Path, n: usize, seed: u64, output: &Path, force: bool) -> Result<()> {
    if helmholtz::run::vi::is_vi_run(dir) {
        return super::vi::sample(dir, n, seed, output, force);
    }
    let is_png = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        bail!(
            "{}: sample writes PNG images only; name the output FILE.png",
            output.display()
        );
    }
    super::sample::refuse_existing(output, force)?;
    if n == 0 {
        bail!("--n 0 draws nothing; give at least 1 sample");
    }
    let run = Run::open(dir)?;
    let (h, w) = image_shape(&run);
    let scale = scale_for(h);
    let pixels = (n as u128) * (h * w * scale * scale) as u128;
    if pixels > MAX_PIXELS as u128 {
        bail!(
            "--n {n} would draw a grid of {pixels} pixels ({} MiB); at most {} samples of this model fit in {MAX_PIXELS} pixels",
            pixels >> 20,
            MAX_PIXELS / (h * w * scale * scale).max(1)
        );
    }
    write_samples(&run, n, seed, output)?;
    out!("wrote {}", output.display());
    Ok(())
}

/// (height, width) of the run's images (one row when the data are not images).
pub fn image_shape(run: &Run) -> (usize, usize) {
    run.data
        .train
        .image_shape()
        .unwrap_or((1, run.model.x_dim()))
}

/// Grey-level samples p(x | h_1) of `n` dreams as a grid.
pub fn write_samples(run: &Run, n: usize, seed: u64, output: &Path) -> Result<()> {
    let (h, w) = image_shape(run);
    let images = run.sample_means(n, seed)?;
    let columns = (n as f64).sqrt().ceil() as usize;
    plots::image_grid(&images, h, w, columns.max(1), scale_for(h), output)
}

/// Pixel scale of a grid of images `height` pixels high.
pub fn scale_for(height: usize) -> usize {
    (96 / height.max(1)).clamp(1, 16)
}

/// Refuses to write over an existing `output` unless `force` (every `sample` output: images,
/// posterior draws, fitted-distribution draws).
pub fn refuse_existing(output: &Path, force: bool) -> Result<()> {
    if output.exists() && !force {
        bail!(
            "{} exists; sample does not overwrite a file unless --force is given",
            output.display()
        );
    }
    Ok(())
}
