//! The atoms of a patches run: how localized they are (their spatial spread) and their order by
//! λ (most used first), for `helmholtz atoms` and the pictures of a run.

use std::path::Path;

use faer::Mat;
use helmholtz::eval::sparseness::spatial_spread;
use helmholtz::run::{CONFIG_FILE, checkpoint};
use helmholtz::{Error, Result};

use super::SparseConfig;

/// The dictionary and λ of a patches run's `model.safetensors`, with the atoms' spatial spread.
#[derive(Clone, Debug)]
pub struct RunAtoms {
    /// The dictionary, D × H (atoms as columns).
    pub dictionary: Mat<f64>,
    /// λ of each atom.
    pub lambda: Vec<f64>,
    /// Side of the square patches (D = size²).
    pub size: usize,
    /// The atoms' spatial spread in pixels
    /// ([`helmholtz::eval::sparseness::spatial_spread`]), sorted ascending.
    pub spread: Vec<f64>,
}

impl RunAtoms {
    /// The spread at quantile `q` in [0, 1] (nearest rank).
    pub fn spread_at(&self, q: f64) -> f64 {
        self.spread[((self.spread.len() - 1) as f64 * q).round() as usize]
    }

    /// The spread of a flat `size` × `size` atom (every pixel equal), the least localized.
    pub fn flat_spread(&self) -> f64 {
        (((self.size * self.size) as f64 - 1.0) / 6.0).sqrt()
    }
}

/// Reads the atoms of the patches run in `run` (its config and `model.safetensors`).
pub fn read_atoms(run: &Path) -> Result<RunAtoms> {
    let config = SparseConfig::load(&run.join(CONFIG_FILE), &[])?;
    if config.data.source != "patches" {
        return Err(Error::Config(format!(
            "{}: atoms are drawn for patches runs, this one is {:?}",
            run.display(),
            config.data.source
        )));
    }
    let model = run.join("model.safetensors");
    let tensors = checkpoint::read_all_tensors(&model)?;
    let (Some(dictionary), Some(lambda)) = (tensors.get("dictionary"), tensors.get("lambda"))
    else {
        return Err(Error::format(&model, "no dictionary and λ"));
    };
    let (d, h) = (dictionary.shape[0], dictionary.shape[1]);
    let size = config.data.size;
    if d != size * size || lambda.data.len() != h || h == 0 {
        return Err(Error::format(
            &model,
            format!(
                "a {d}×{h} dictionary with {} λ for {size}×{size} patches",
                lambda.data.len()
            ),
        ));
    }
    let w = Mat::from_fn(d, h, |r, c| f64::from(dictionary.data[c * d + r]));
    let lambda: Vec<f64> = lambda.data.iter().map(|&v| f64::from(v)).collect();
    let mut spread = spatial_spread(w.as_ref(), size)?;
    spread.sort_by(f64::total_cmp);
    Ok(RunAtoms {
        dictionary: w,
        lambda,
        size,
        spread,
    })
}

/// The atoms (columns of `w`) ordered by λ, most used first, each as a vector of pixels.
pub fn ordered_by_lambda(w: &Mat<f64>, lambda: &[f64]) -> Vec<Vec<f32>> {
    let mut order: Vec<usize> = (0..w.ncols()).collect();
    order.sort_by(|&a, &b| lambda[b].total_cmp(&lambda[a]));
    order
        .iter()
        .map(|&c| (0..w.nrows()).map(|r| w[(r, c)] as f32).collect())
        .collect()
}

/// The columns of `w` as vectors of pixels, in their order.
pub fn columns(w: &Mat<f64>) -> Vec<Vec<f32>> {
    (0..w.ncols())
        .map(|c| (0..w.nrows()).map(|r| w[(r, c)] as f32).collect())
        .collect()
}
