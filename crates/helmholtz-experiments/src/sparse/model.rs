//! A sparse-coding run's learned model, opened to use on new points: the dictionary, λ and σ²
//! of `model.safetensors` (and the encoder of an amortized run), with the run's whitening.
//! Posteriors of new points are each point's own: the encoder's, or for per-point runs the
//! E-step of the point's standard ELBO at the run's W, λ and σ²
//! ([`helmholtz::train::sparse_coding::fit_posteriors_at`]).

use std::path::{Path, PathBuf};

use faer::{Mat, MatRef};
use helmholtz::data::patches::Whitening;
use helmholtz::models::encoder::AmortizedSparseCoding;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::objectives::sparse_coding::standard_elbo_points;
use helmholtz::run::{CONFIG_FILE, checkpoint};
use helmholtz::train::sparse_coding::fit_posteriors_at;
use helmholtz::{Error, Result};

use super::config::WhitenKind;
use super::patches::{amortized_model, load_patches};
use super::{PosteriorFamily, SparseConfig};

/// The model of a sparse-coding run.
#[derive(Clone, Debug)]
pub struct SparseRunModel {
    /// The run directory.
    pub dir: PathBuf,
    /// The run's resolved config.
    pub config: SparseConfig,
    /// W (D × H), unit-norm columns.
    pub dictionary: Mat<f64>,
    /// λ_h, the Laplace prior's scales.
    pub lambda: Vec<f64>,
    /// σ², the noise variance.
    pub sigma2: f64,
    /// The ZCA filter of the run's data (None: the data is used as given, or, for an
    /// Olshausen–Field run, filtered as whole images).
    pub whitening: Option<Whitening>,
    /// The encoder of an amortized run.
    pub encoder: Option<AmortizedSparseCoding>,
}

impl SparseRunModel {
    /// Opens the patches or points run in `dir` (one seed's directory). The whitening is
    /// recomputed from the run's data, as the run computed it.
    pub fn open(dir: &Path) -> Result<Self> {
        let config = SparseConfig::load(&dir.join(CONFIG_FILE), &[])?;
        let path = dir.join("model.safetensors");
        let tensors = checkpoint::read_all_tensors(&path)?;
        let find = |name: &str| {
            tensors
                .tensors
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| Error::format(&path, format!("tensor {name} is missing")))
        };
        let w = find("dictionary")?;
        let (d, h) = (w.shape[0], w.shape[1]);
        let dictionary = Mat::from_fn(d, h, |r, c| f64::from(w.data[c * d + r]));
        let lambda: Vec<f64> = find("lambda")?.data.iter().map(|&v| f64::from(v)).collect();
        let sigma2 = f64::from(find("sigma2")?.data[0]);
        if lambda.len() != h {
            return Err(Error::format(
                &path,
                format!("{} λ for {h} atoms", lambda.len()),
            ));
        }
        let whitening = match config.data.source.as_str() {
            "bars" => None,
            _ if config.data.whitening() == WhitenKind::Zca => {
                load_patches(&config.data, config.seed)?.whitening
            }
            _ => None,
        };
        let encoder = match config.model.posterior {
            PosteriorFamily::Amortized => {
                let mut model = amortized_model(&config, d, config.seed)?;
                for tensor in &mut model.params.tensors {
                    let stored = find(&tensor.name)?;
                    if stored.shape != tensor.shape {
                        return Err(Error::format(
                            &path,
                            format!(
                                "{} of shape {:?}, the config's encoder has {:?}",
                                tensor.name, stored.shape, tensor.shape
                            ),
                        ));
                    }
                    tensor.data.clone_from(&stored.data);
                }
                Some(model)
            }
            _ => None,
        };
        Ok(SparseRunModel {
            dir: dir.to_path_buf(),
            config,
            dictionary,
            lambda,
            sigma2,
            whitening,
            encoder,
        })
    }

    /// Data dimension D.
    pub fn dim(&self) -> usize {
        self.dictionary.nrows()
    }

    /// Points (D × N, as the run's data before whitening) as the model sees them.
    pub fn whiten(&self, x: MatRef<'_, f64>) -> Result<Mat<f64>> {
        if x.nrows() != self.dim() {
            return Err(Error::Dimension(format!(
                "points of {} values for a model of dimension {}",
                x.nrows(),
                self.dim()
            )));
        }
        Ok(match &self.whitening {
            Some(whitening) => whitening.apply(x),
            None => x.to_owned(),
        })
    }

    /// The posterior of each column of the whitened `x` and its standard ELBO F_n(λ, σ²): the
    /// encoder's posteriors for an amortized run, else each point's E-step at the run's W, λ
    /// and σ² (L-BFGS with the run's `train` settings). A point's posterior and value do not
    /// depend on the other points.
    pub fn posteriors(&self, x: MatRef<'_, f64>) -> Result<(SparseCoding, Vec<f64>)> {
        if let Some(encoder) = &self.encoder {
            let q = helmholtz::train::amortized::per_point_model(encoder, x)?;
            let values = standard_elbo_points(&q, x, &self.lambda, self.sigma2, None)?;
            return Ok((q, values));
        }
        let model = self.per_point_template()?;
        fit_posteriors_at(
            &model,
            x,
            &self.lambda,
            self.sigma2,
            &self.config.train.lbfgs(),
        )
    }

    /// A one-point model of the run's posterior family holding its dictionary.
    pub fn per_point_template(&self) -> Result<SparseCoding> {
        let m = &self.config.model;
        let mut model = SparseCoding::new(self.dim(), m.n_latents, 1, m.posterior.per_point(), 0)?
            .with_scale_param(m.scale_param);
        model.scale_floor = m.scale_floor;
        model.set_dictionary(&self.dictionary)?;
        Ok(model)
    }
}
