//! The fitted q(w) of a vi run: its parameters as stored in `posterior.json`, draws and log
//! densities, the posterior mean and covariance in closed form, marginal quantiles (closed form
//! for the Gaussian, else from draws), the negative ELBO with its standard error, and the
//! held-out log predictive density and accuracy. (Over 600 lines because of its tests: the
//! last 120.)

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::Family;
use crate::dist::skew::{SkewNormal, SkewT};
use crate::dist::skew_mixture::SkewMixture;
use crate::error::{Error, Result};
use crate::math::rng::Stream;
use crate::math::special::normal_quantile;
use crate::models::logistic_regression::{LogisticRegression, ln_sigmoid};

/// The marginal quantile levels reported per weight.
pub const QUANTILE_LEVELS: [f64; 5] = [0.025, 0.25, 0.5, 0.75, 0.975];

/// A fitted variational posterior.
#[derive(Clone, Debug)]
pub enum Posterior {
    /// N(ξ, Ω), held as the skew-normal with η = 0.
    Gaussian(SkewNormal),
    /// SN(ξ, Ω, η).
    SkewNormal(SkewNormal),
    /// ST(ξ, Ω, η, ν).
    SkewT(SkewT),
    /// Σ_k p_k SN(ξ_k, Ω_k, η_k).
    Mixture(SkewMixture),
}

/// A skew-normal's parameters in `posterior.json` (Ω row by row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkewParameters {
    /// Location ξ.
    pub xi: Vec<f64>,
    /// Scale matrix Ω, row by row.
    pub omega: Vec<Vec<f64>>,
    /// Shape over scale η.
    pub eta: Vec<f64>,
}

/// The family's parameters as stored in `posterior.json` (exact: shortest round-trip decimals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Parameters {
    /// N(mean, covariance).
    Gaussian {
        /// Mean.
        mean: Vec<f64>,
        /// Covariance, row by row.
        covariance: Vec<Vec<f64>>,
    },
    /// SN(ξ, Ω, η).
    SkewNormal(SkewParameters),
    /// ST(ξ, Ω, η, ν).
    SkewT {
        /// The skew-normal part.
        #[serde(flatten)]
        base: SkewParameters,
        /// Degrees of freedom ν.
        nu: f64,
    },
    /// Σ_k p_k SN(ξ_k, Ω_k, η_k).
    SkewNormalMixture {
        /// Weights p_k.
        weights: Vec<f64>,
        /// Components.
        components: Vec<SkewParameters>,
    },
}

fn rows(m: &Mat<f64>) -> Vec<Vec<f64>> {
    (0..m.nrows())
        .map(|r| (0..m.ncols()).map(|c| m[(r, c)]).collect())
        .collect()
}

fn matrix(rows: &[Vec<f64>], what: &str) -> Result<Mat<f64>> {
    let d = rows.len();
    if rows.iter().any(|r| r.len() != d) {
        return Err(Error::Checkpoint(format!("{what} is not a square matrix")));
    }
    Ok(Mat::from_fn(d, d, |r, c| rows[r][c]))
}

impl SkewParameters {
    fn of(q: &SkewNormal) -> Self {
        SkewParameters {
            xi: q.xi.clone(),
            omega: rows(&q.omega),
            eta: q.eta.clone(),
        }
    }

    fn skew_normal(&self) -> Result<SkewNormal> {
        SkewNormal::new(
            self.xi.clone(),
            matrix(&self.omega, "omega")?,
            self.eta.clone(),
        )
    }
}

/// One weight's marginal posterior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marginal {
    /// The feature's name.
    pub feature: String,
    /// Posterior mean.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// Quantiles at [`QUANTILE_LEVELS`].
    pub quantiles: Vec<f64>,
}

/// What `posterior.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PosteriorSummary {
    /// One name per weight.
    pub features: Vec<String>,
    /// The family and its parameters.
    pub parameters: Parameters,
    /// The posterior mean.
    pub mean: Vec<f64>,
    /// The posterior covariance, row by row.
    pub covariance: Vec<Vec<f64>>,
    /// The levels of the marginal quantiles.
    pub quantile_levels: Vec<f64>,
    /// Per weight: mean, standard deviation and quantiles.
    pub marginals: Vec<Marginal>,
    /// How the summaries were computed.
    pub computed: String,
}

impl PosteriorSummary {
    /// The marginals as a readable table.
    pub fn table(&self) -> String {
        let width = self
            .features
            .iter()
            .map(|f| f.chars().count())
            .max()
            .unwrap_or(0)
            .max(7);
        let mut out = format!(
            "{:<width$} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n",
            "feature", "mean", "sd", "2.5%", "25%", "50%", "75%", "97.5%"
        );
        for m in &self.marginals {
            out.push_str(&format!(
                "{:<width$} {:>10.4} {:>10.4}",
                m.feature, m.mean, m.sd
            ));
            for q in &m.quantiles {
                out.push_str(&format!(" {q:>10.4}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Held-out predictions by Monte Carlo over draws of q.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictive {
    /// Held-out points.
    pub points: usize,
    /// (1/m) Σ_i ln p(y_i | x_i, data), p(y | x, data) ≈ (1/S) Σ_s σ(y xᵀw_s).
    pub log_predictive_per_point: f64,
    /// The share of points whose label is the more probable one under the predictive.
    pub accuracy: f64,
}

impl Posterior {
    /// Which family.
    pub fn family(&self) -> Family {
        match self {
            Posterior::Gaussian(_) => Family::Gaussian,
            Posterior::SkewNormal(_) => Family::SkewNormal,
            Posterior::SkewT(_) => Family::SkewT,
            Posterior::Mixture(_) => Family::SkewNormalMixture,
        }
    }

    /// Dimension of w.
    pub fn dim(&self) -> usize {
        match self {
            Posterior::Gaussian(q) | Posterior::SkewNormal(q) => q.dim(),
            Posterior::SkewT(q) => q.base.dim(),
            Posterior::Mixture(q) => q.components[0].dim(),
        }
    }

    /// The parameters as stored.
    pub fn parameters(&self) -> Parameters {
        match self {
            Posterior::Gaussian(q) => Parameters::Gaussian {
                mean: q.xi.clone(),
                covariance: rows(&q.omega),
            },
            Posterior::SkewNormal(q) => Parameters::SkewNormal(SkewParameters::of(q)),
            Posterior::SkewT(q) => Parameters::SkewT {
                base: SkewParameters::of(&q.base),
                nu: q.nu,
            },
            Posterior::Mixture(q) => Parameters::SkewNormalMixture {
                weights: q.weights.clone(),
                components: q.components.iter().map(SkewParameters::of).collect(),
            },
        }
    }

    /// The posterior with stored parameters.
    pub fn from_parameters(parameters: &Parameters) -> Result<Self> {
        Ok(match parameters {
            Parameters::Gaussian { mean, covariance } => {
                let d = mean.len();
                Posterior::Gaussian(SkewNormal::new(
                    mean.clone(),
                    matrix(covariance, "covariance")?,
                    vec![0.0; d],
                )?)
            }
            Parameters::SkewNormal(p) => Posterior::SkewNormal(p.skew_normal()?),
            Parameters::SkewT { base, nu } => Posterior::SkewT(SkewT {
                base: base.skew_normal()?,
                nu: *nu,
            }),
            Parameters::SkewNormalMixture {
                weights,
                components,
            } => Posterior::Mixture(SkewMixture::new(
                weights.clone(),
                components
                    .iter()
                    .map(SkewParameters::skew_normal)
                    .collect::<Result<_>>()?,
            )?),
        })
    }

    /// `n` draws as rows. A mixture draws each point's component first, then the components'
    /// points in one batch each, in the order of the components drawn.
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Result<Mat<f64>> {
        match self {
            Posterior::Gaussian(q) | Posterior::SkewNormal(q) => q.sample(n, rng),
            Posterior::SkewT(q) => q.sample(n, rng),
            Posterior::Mixture(q) => {
                let labels: Vec<usize> = (0..n)
                    .map(|_| {
                        let u = rng.uniform_f64();
                        let mut total = 0.0;
                        q.weights
                            .iter()
                            .position(|p| {
                                total += p;
                                u < total
                            })
                            .unwrap_or(q.weights.len() - 1)
                    })
                    .collect();
                let mut batches = Vec::with_capacity(q.components.len());
                for (k, c) in q.components.iter().enumerate() {
                    let count = labels.iter().filter(|&&l| l == k).count();
                    batches.push(c.sample(count, rng)?);
                }
                let mut next = vec![0usize; q.components.len()];
                let d = self.dim();
                let mut out = Mat::zeros(n, d);
                for (i, &k) in labels.iter().enumerate() {
                    for j in 0..d {
                        out[(i, j)] = batches[k][(next[k], j)];
                    }
                    next[k] += 1;
                }
                Ok(out)
            }
        }
    }

    /// ln q(w) for each row of `w`.
    pub fn log_density_rows(&self, w: MatRef<'_, f64>) -> Result<Vec<f64>> {
        match self {
            Posterior::Gaussian(q) | Posterior::SkewNormal(q) => Ok(q.log_density_rows(w)?.0),
            Posterior::SkewT(q) => Ok(q.log_density_rows(w)?.0),
            Posterior::Mixture(q) => {
                let parts: Vec<Vec<f64>> = q
                    .components
                    .iter()
                    .map(|c| Ok(c.log_density_rows(w)?.0))
                    .collect::<Result<_>>()?;
                Ok((0..w.nrows())
                    .map(|i| {
                        let terms: Vec<f64> = (0..q.weights.len())
                            .map(|k| q.weights[k].ln() + parts[k][i])
                            .collect();
                        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
                    })
                    .collect())
            }
        }
    }

    /// The mean and covariance in closed form: SN: ξ + √(2/π)β and Ω − (2/π)ββᵀ; ST (ν > 2):
    /// ξ + b_ν β and ν/(ν − 2) Ω − b_ν² ββᵀ; a mixture by the law of total covariance.
    pub fn mean_covariance(&self) -> Result<(Vec<f64>, Mat<f64>)> {
        // (m − ξ)(m − ξ)ᵀ is the ββᵀ term of both skew families.
        let shifted = |omega: &Mat<f64>, factor: f64, xi: &[f64], mean: &[f64]| {
            Mat::from_fn(xi.len(), xi.len(), |r, c| {
                factor * omega[(r, c)] - (mean[r] - xi[r]) * (mean[c] - xi[c])
            })
        };
        let skew_normal = |q: &SkewNormal| {
            let mean = q.mean();
            let covariance = shifted(&q.omega, 1.0, &q.xi, &mean);
            (mean, covariance)
        };
        Ok(match self {
            Posterior::Gaussian(q) => (q.xi.clone(), q.omega.clone()),
            Posterior::SkewNormal(q) => skew_normal(q),
            Posterior::SkewT(q) => {
                if q.nu <= 2.0 {
                    return Err(Error::InvalidData(format!(
                        "a skew-t with ν = {} has no covariance",
                        q.nu
                    )));
                }
                let mean = q.mean()?;
                let covariance = shifted(&q.base.omega, q.nu / (q.nu - 2.0), &q.base.xi, &mean);
                (mean, covariance)
            }
            Posterior::Mixture(q) => {
                let d = self.dim();
                let parts: Vec<(Vec<f64>, Mat<f64>)> =
                    q.components.iter().map(skew_normal).collect();
                let mean: Vec<f64> = (0..d)
                    .map(|j| {
                        q.weights
                            .iter()
                            .zip(&parts)
                            .map(|(p, (m, _))| p * m[j])
                            .sum()
                    })
                    .collect();
                let covariance = Mat::from_fn(d, d, |r, c| {
                    q.weights
                        .iter()
                        .zip(&parts)
                        .map(|(p, (m, s))| p * (s[(r, c)] + (m[r] - mean[r]) * (m[c] - mean[c])))
                        .sum()
                });
                (mean, covariance)
            }
        })
    }

    /// Mean, covariance and marginal quantiles per feature: quantiles in closed form for the
    /// Gaussian, else from `draws` (rows, at least 2).
    pub fn summarize(
        &self,
        features: &[String],
        draws: MatRef<'_, f64>,
        how_drawn: &str,
    ) -> Result<PosteriorSummary> {
        let d = self.dim();
        if features.len() != d || draws.ncols() != d || draws.nrows() < 2 {
            return Err(Error::Dimension(format!(
                "{} feature names and {} × {} draws for a posterior of dimension {d}",
                features.len(),
                draws.nrows(),
                draws.ncols()
            )));
        }
        let (mean, covariance) = self.mean_covariance()?;
        let closed = matches!(self, Posterior::Gaussian(_));
        let marginals = (0..d)
            .map(|j| {
                let sd = covariance[(j, j)].max(0.0).sqrt();
                let quantiles = if closed {
                    QUANTILE_LEVELS
                        .iter()
                        .map(|&p| mean[j] + sd * normal_quantile(p))
                        .collect()
                } else {
                    let mut column: Vec<f64> = (0..draws.nrows()).map(|i| draws[(i, j)]).collect();
                    column.sort_by(f64::total_cmp);
                    QUANTILE_LEVELS
                        .iter()
                        .map(|&p| sorted_quantile(&column, p))
                        .collect()
                };
                Marginal {
                    feature: features[j].clone(),
                    mean: mean[j],
                    sd,
                    quantiles,
                }
            })
            .collect();
        Ok(PosteriorSummary {
            features: features.to_vec(),
            parameters: self.parameters(),
            mean,
            covariance: rows(&covariance),
            quantile_levels: QUANTILE_LEVELS.to_vec(),
            marginals,
            computed: if closed {
                "closed form".into()
            } else {
                format!("mean and covariance in closed form; quantiles from {how_drawn}")
            },
        })
    }

    /// The negative ELBO −E_q[ln p(y | X, w) + ln p(w) − ln q(w)] by plain Monte Carlo over the
    /// rows of `draws` (from q), with its standard error.
    pub fn negative_elbo(
        &self,
        model: &LogisticRegression,
        draws: MatRef<'_, f64>,
    ) -> Result<(f64, f64)> {
        let n = draws.nrows();
        if n < 2 || draws.ncols() != model.dim() {
            return Err(Error::Dimension(format!(
                "{n} × {} draws for {} weights (at least 2 draws)",
                draws.ncols(),
                model.dim()
            )));
        }
        let ln_q = self.log_density_rows(draws)?;
        let values: Vec<f64> = (0..n)
            .map(|s| {
                let w: Vec<f64> = (0..draws.ncols()).map(|j| draws[(s, j)]).collect();
                -model.log_likelihood(&w).0 - model.log_prior(&w) + ln_q[s]
            })
            .collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Ok((mean, (variance / n as f64).sqrt()))
    }
}

/// The type-7 quantile (linear between order statistics) of sorted values.
fn sorted_quantile(sorted: &[f64], p: f64) -> f64 {
    let h = p * (sorted.len() - 1) as f64;
    let (lo, frac) = (h.floor() as usize, h - h.floor());
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// The held-out log predictive density per point and accuracy of `draws` (rows of w) on
/// features `x` (rows) and ±1 labels `y`.
pub fn predictive(draws: MatRef<'_, f64>, x: MatRef<'_, f64>, y: &[f64]) -> Predictive {
    let (m, s, d) = (x.nrows(), draws.nrows(), x.ncols());
    let ln_s = (s as f64).ln();
    let mut total = 0.0;
    let mut correct = 0usize;
    let mut terms = vec![0.0; s];
    for i in 0..m {
        let mut p_positive = 0.0;
        for (k, term) in terms.iter_mut().enumerate() {
            let t: f64 = (0..d).map(|j| x[(i, j)] * draws[(k, j)]).sum();
            *term = ln_sigmoid(y[i] * t);
            p_positive += crate::math::sigmoid(t);
        }
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        total += top + terms.iter().map(|v| (v - top).exp()).sum::<f64>().ln() - ln_s;
        let predicted = if p_positive / s as f64 > 0.5 {
            1.0
        } else {
            -1.0
        };
        if predicted == y[i] {
            correct += 1;
        }
    }
    Predictive {
        points: m,
        log_predictive_per_point: total / m.max(1) as f64,
        accuracy: correct as f64 / m.max(1) as f64,
    }
}

/// The predictive probability of the label +1 for each row of `x`: (1/S) Σ_s σ(xᵢᵀw_s) over
/// the S rows of `draws`.
pub fn positive_probabilities(draws: MatRef<'_, f64>, x: MatRef<'_, f64>) -> Vec<f64> {
    let (s, d) = (draws.nrows(), x.ncols());
    (0..x.nrows())
        .map(|i| {
            let total: f64 = (0..s)
                .map(|k| crate::math::sigmoid((0..d).map(|j| x[(i, j)] * draws[(k, j)]).sum()))
                .sum();
            total / s as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skew_normal(xi: [f64; 2], eta: [f64; 2]) -> SkewNormal {
        SkewNormal::new(
            xi.to_vec(),
            Mat::from_fn(2, 2, |r, c| if r == c { 0.6 } else { 0.2 }),
            eta.to_vec(),
        )
        .unwrap()
    }

    /// The closed-form mean and covariance of each family against the moments of 200 000 of
    /// its own draws (each entry within five standard errors), and the parameters round-trip.
    #[test]
    fn closed_form_moments_match_draws() {
        let families = [
            Posterior::Gaussian(skew_normal([0.5, -1.0], [0.0, 0.0])),
            Posterior::SkewNormal(skew_normal([0.5, -1.0], [2.0, -1.0])),
            Posterior::SkewT(SkewT {
                base: skew_normal([0.5, -1.0], [2.0, -1.0]),
                nu: 9.0,
            }),
            Posterior::Mixture(
                SkewMixture::new(
                    vec![0.3, 0.7],
                    vec![
                        skew_normal([0.5, -1.0], [2.0, -1.0]),
                        skew_normal([-1.0, 1.0], [-1.0, 0.5]),
                    ],
                )
                .unwrap(),
            ),
        ];
        let n = 200_000;
        for q in families {
            let (mean, covariance) = q.mean_covariance().unwrap();
            let draws = q.sample(n, &mut Stream::new(4, &[])).unwrap();
            let nf = n as f64;
            for r in 0..2 {
                let m: f64 = (0..n).map(|i| draws[(i, r)]).sum::<f64>() / nf;
                let se = (covariance[(r, r)] / nf).sqrt();
                assert!((m - mean[r]).abs() < 5.0 * se, "{:?} mean {r}", q.family());
                for c in 0..2 {
                    let products: Vec<f64> = (0..n)
                        .map(|i| (draws[(i, r)] - mean[r]) * (draws[(i, c)] - mean[c]))
                        .collect();
                    let cov = products.iter().sum::<f64>() / nf;
                    let var = products.iter().map(|p| (p - cov).powi(2)).sum::<f64>() / nf;
                    assert!(
                        (cov - covariance[(r, c)]).abs() < 5.0 * (var / nf).sqrt(),
                        "{:?} covariance {r}{c}: {cov} vs {}",
                        q.family(),
                        covariance[(r, c)]
                    );
                }
            }
            let back = Posterior::from_parameters(&q.parameters()).unwrap();
            assert_eq!(back.parameters(), q.parameters());
            let text = serde_json::to_string(&q.parameters()).unwrap();
            let parsed: Parameters = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, q.parameters());
        }
    }

    /// The mixture's log density integrates to one (a grid on a wide square) and agrees with
    /// the weighted component densities.
    #[test]
    fn the_mixture_density_is_normalised() {
        let q = Posterior::Mixture(
            SkewMixture::new(
                vec![0.4, 0.6],
                vec![
                    skew_normal([0.5, -1.0], [2.0, -1.0]),
                    skew_normal([-1.0, 1.0], [-1.0, 0.5]),
                ],
            )
            .unwrap(),
        );
        let (step, half) = (0.02, 7.0);
        let cells = (2.0 * half / step) as usize;
        let grid = Mat::from_fn(cells * cells, 2, |i, j| {
            let index = if j == 0 { i / cells } else { i % cells };
            -half + step * (index as f64 + 0.5)
        });
        let ln_q = q.log_density_rows(grid.as_ref()).unwrap();
        let mass: f64 = ln_q.iter().map(|v| v.exp() * step * step).sum();
        assert!((mass - 1.0).abs() < 1e-4, "{mass}");
    }

    /// Closed-form Gaussian quantiles (Φ⁻¹(0.975) = 1.96 standard deviations), the type-7
    /// quantile of sorted draws, and the predictive on perfectly separated points.
    #[test]
    fn summaries_and_predictive() {
        let q = Posterior::Gaussian(skew_normal([0.5, -1.0], [0.0, 0.0]));
        let names = vec!["a".to_string(), "b".to_string()];
        let draws = q.sample(1000, &mut Stream::new(1, &[])).unwrap();
        let summary = q.summarize(&names, draws.as_ref(), "1000 draws").unwrap();
        let a = &summary.marginals[0];
        assert!((a.quantiles[2] - 0.5).abs() < 1e-15);
        assert!((a.quantiles[4] - (0.5 + 0.6f64.sqrt() * 1.959_963_984_540_054)).abs() < 1e-12);
        assert_eq!(summary.computed, "closed form");
        assert!(summary.table().contains("97.5%"));
        // Perfectly separated points far from the boundary: accuracy 1 and ln p ≈ 0.
        let w = Mat::from_fn(50, 2, |_, j| if j == 0 { 5.0 } else { 0.0 });
        let x = Mat::from_fn(4, 2, |i, j| {
            if j == 0 {
                [3.0, -3.0, 2.0, -2.0][i]
            } else {
                1.0
            }
        });
        let p = predictive(w.as_ref(), x.as_ref(), &[1.0, -1.0, 1.0, -1.0]);
        assert_eq!((p.points, p.accuracy), (4, 1.0));
        assert!(p.log_predictive_per_point > -1e-4 && p.log_predictive_per_point < 0.0);
        assert_eq!(sorted_quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.25), 2.0);
        assert_eq!(sorted_quantile(&[1.0, 2.0], 0.5), 1.5);
    }

    /// The probabilities of +1 are those the predictive scores: its log density per point is
    /// the mean of ln p (label +1) or ln(1 − p) (label −1), since σ(−t) = 1 − σ(t), and its
    /// accuracy the share of labels on the side of 1/2 that p is.
    #[test]
    fn positive_probabilities_agree_with_the_predictive() {
        let q = Posterior::SkewNormal(skew_normal([0.5, -1.0], [2.0, -1.0]));
        let w = q.sample(500, &mut Stream::new(4, &[])).unwrap();
        let x = Mat::from_fn(40, 2, |i, j| ((i * 7 + j * 3) % 11) as f64 / 3.0 - 1.6);
        let y: Vec<f64> = (0..40)
            .map(|i| if (i * 5) % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let p = positive_probabilities(w.as_ref(), x.as_ref());
        let scored = predictive(w.as_ref(), x.as_ref(), &y);
        let log_density: f64 = p
            .iter()
            .zip(&y)
            .map(|(p, y)| if *y > 0.0 { p.ln() } else { (1.0 - p).ln() })
            .sum::<f64>()
            / 40.0;
        assert!(
            (log_density - scored.log_predictive_per_point).abs() < 1e-12,
            "{log_density} {}",
            scored.log_predictive_per_point
        );
        let right = p
            .iter()
            .zip(&y)
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.0))
            .count();
        assert_eq!(right as f64 / 40.0, scored.accuracy);
        assert!(p.iter().all(|v| *v > 0.0 && *v < 1.0));
    }
}
