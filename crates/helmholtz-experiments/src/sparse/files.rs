//! The files of a sparse-coding run directory: the resolved config and `model.safetensors`.

use std::path::Path;

use faer::Mat;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::models::{ParamSet, Tensor};
use helmholtz::objectives::sparse_coding::EntropyTerms;
use helmholtz::run::{CONFIG_FILE, RunDir, checkpoint};
use helmholtz::{Error, Result};

use super::SparseConfig;

/// Writes the dictionary (D × H, unit-norm columns), λ, σ² and the posterior parameters.
pub(super) fn write_model(dir: &Path, model: &SparseCoding, terms: &EntropyTerms) -> Result<()> {
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (_, mu, scales) = model.blocks();
    let h = model.n_latents;
    let posteriors = vec![
        Tensor {
            name: "posterior.mean".into(),
            shape: vec![h, model.n_points],
            data: f32s(mu),
        },
        Tensor {
            name: "posterior.scale".into(),
            shape: vec![SparseCoding::scale_len(model.kind, h), model.n_points],
            data: f32s(scales),
        },
    ];
    write_dictionary(dir, &model.dictionary(), terms, posteriors)
}

/// Writes `model.safetensors`: the dictionary `w` (D × H), λ, σ², then `extra` tensors.
pub(super) fn write_dictionary(
    dir: &Path,
    w: &Mat<f64>,
    terms: &EntropyTerms,
    extra: Vec<Tensor>,
) -> Result<()> {
    let (d, h) = (w.nrows(), w.ncols());
    let mut tensors = vec![
        Tensor {
            name: "dictionary".into(),
            shape: vec![d, h],
            data: (0..h)
                .flat_map(|c| (0..d).map(move |r| (r, c)))
                .map(|(r, c)| w[(r, c)] as f32)
                .collect(),
        },
        Tensor {
            name: "lambda".into(),
            shape: vec![h],
            data: terms.lambda.iter().map(|&x| x as f32).collect(),
        },
        Tensor {
            name: "sigma2".into(),
            shape: vec![1],
            data: vec![terms.sigma2 as f32],
        },
    ];
    tensors.extend(extra);
    checkpoint::write_tensors(&dir.join("model.safetensors"), &ParamSet { tensors })
}

/// Maps an I/O error on `path` to the library's error.
pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { path, source }
}

/// Creates the run directory (refusing one that holds anything; locked while the returned
/// handle lives) and writes the resolved config (with the run's seed) into it.
pub(super) fn create_run_dir(config: &SparseConfig, seed: u64, dir: &Path) -> Result<RunDir> {
    let run = RunDir::create(dir)?;
    write_config(&run, config, seed)?;
    Ok(run)
}

/// Writes the resolved config (with the run's seed) into `run`.
pub(super) fn write_config(run: &RunDir, config: &SparseConfig, seed: u64) -> Result<()> {
    let mut resolved = config.clone();
    resolved.seed = seed;
    let text = toml::to_string(&resolved).map_err(|e| Error::Config(e.to_string()))?;
    run.write_file(CONFIG_FILE, text.as_bytes())
}
