//! `helmholtz sample RUN`: model samples as an image grid.

use std::path::Path;

use anyhow::Result;
use helmholtz::run::Run;

use crate::{out, plots};

/// Draws `n` samples of the run's model with `seed` into the PNG `output`.
pub fn run(dir: &Path, n: usize, seed: u64, output: &Path) -> Result<()> {
    let run = Run::open(dir)?;
    write_samples(&run, n, seed, output)?;
    out!("wrote {}", output.display());
    Ok(())
}

/// (height, width) of the run's images (one row when the data are not images).
pub fn image_shape(run: &Run) -> (usize, usize) {
    run.data.train.image_shape.unwrap_or((1, run.model.x_dim()))
}

/// Grey-level samples p(x | h_1) of `n` dreams as a grid.
pub fn write_samples(run: &Run, n: usize, seed: u64, output: &Path) -> Result<()> {
    let (h, w) = image_shape(run);
    let images = run.sample_means(n, seed);
    let columns = (n as f64).sqrt().ceil() as usize;
    plots::image_grid(&images, h, w, columns.max(1), scale_for(h), output)
}

/// Pixel scale of a grid of images `height` pixels high.
pub fn scale_for(height: usize) -> usize {
    (96 / height.max(1)).clamp(1, 16)
}
