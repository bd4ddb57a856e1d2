//! Negative-binomial maximum-likelihood targets on counts: one NB(r, s) and a mixture
//! Σ_k p_k NB(r_k, s_k), each with the gradient of its mean NLL in its standard coordinates.
//! Through a surrogate the NB is a Gamma(α, β) with r = α/(1 − β), s = β (the Gamma-Poisson
//! link), and the mixture a mixture of Gammas as one joint exponential family, both kept in
//! mean coordinates ([`MeanCoordinates`]).

use serde::Serialize;

use crate::dist::exponential_family::{ExponentialFamily, Gamma, Mixture};
use crate::dist::negative_binomial::{Counts, NbMixtureGradient};
use crate::dist::surrogate::{MeanCoordinates, Surrogated};
use crate::error::{Error, Result};
use crate::math::rng::Stream;
use crate::math::special::negative_binomial_draw;
use crate::objectives::targets::Target;
use crate::optim::sngd::Unconstrained;

/// A negative binomial NB(r, s) in standard coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NegativeBinomial {
    /// r > 0.
    pub r: f64,
    /// s in (0, 1).
    pub s: f64,
}

/// A mixture of negative binomials in standard coordinates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NbMixtureParams {
    /// Weights on the simplex.
    pub weights: Vec<f64>,
    /// Per-component r.
    pub r: Vec<f64>,
    /// Per-component s.
    pub s: Vec<f64>,
}

impl NbMixtureParams {
    /// One draw: a component from one uniform (by the weights' running sum), then its count.
    pub fn draw(&self, rng: &mut Stream) -> u64 {
        let u = rng.uniform_f64();
        let mut acc = 0.0;
        let j = self
            .weights
            .iter()
            .position(|w| {
                acc += w;
                u < acc
            })
            .unwrap_or(self.weights.len() - 1);
        negative_binomial_draw(self.r[j], self.s[j], rng)
    }
}

/// The mean NLL of counts under one negative binomial.
pub struct NegativeBinomialNll<'a> {
    /// The data.
    pub counts: &'a Counts,
}

impl Target for NegativeBinomialNll<'_> {
    type Point = NegativeBinomial;
    type Gradient = [f64; 2];

    fn evaluate(&self, q: &NegativeBinomial) -> Result<(f64, [f64; 2])> {
        self.counts.nll(q.r, q.s)
    }
}

/// The mean NLL of counts under a mixture of negative binomials.
pub struct NbMixtureNll<'a> {
    /// The data.
    pub counts: &'a Counts,
}

impl Target for NbMixtureNll<'_> {
    type Point = NbMixtureParams;
    type Gradient = NbMixtureGradient;

    fn evaluate(&self, q: &NbMixtureParams) -> Result<(f64, NbMixtureGradient)> {
        self.counts.mixture_nll(&q.weights, &q.r, &q.s)
    }
}

/// The Gamma surrogate's (α, β) from its natural parameters η = (α − 1, −β), checked against
/// the NB domain.
fn shape_rate_in_nb_domain(eta: &[f64]) -> Result<(f64, f64)> {
    let (alpha, beta) = (eta[0] + 1.0, -eta[1]);
    if !(alpha > 0.0 && beta > 0.0 && beta < 1.0) {
        return Err(Error::InvalidData(format!(
            "surrogate α = {alpha}, β = {beta} maps outside the NB domain"
        )));
    }
    Ok((alpha, beta))
}

/// The Gamma surrogate in mean coordinates; gradients pull back to its natural parameters.
impl Surrogated for NegativeBinomial {
    type Surrogate = MeanCoordinates<Gamma>;
    type Gradient = [f64; 2];

    fn from_surrogate(
        surrogate: &MeanCoordinates<Gamma>,
        mu: &Vec<f64>,
        _: &[f64],
    ) -> Result<Self> {
        let eta = surrogate.family.natural_from_mean(mu)?;
        let (alpha, beta) = shape_rate_in_nb_domain(&eta)?;
        Ok(NegativeBinomial {
            r: alpha / (1.0 - beta),
            s: beta,
        })
    }

    fn pull_back(
        &self,
        surrogate: &MeanCoordinates<Gamma>,
        mu: &Vec<f64>,
        _: &[f64],
        g: &[f64; 2],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let eta = surrogate.family.natural_from_mean(mu)?;
        let (alpha, beta) = shape_rate_in_nb_domain(&eta)?;
        let [fr, fs] = *g;
        let d_alpha = fr / (1.0 - beta);
        let d_beta = fr * alpha / (1.0 - beta).powi(2) + fs;
        Ok((vec![d_alpha, -d_beta], Vec::new()))
    }
}

/// The mixture of Gammas as a joint exponential family in mean coordinates; p from its weights
/// and each component by the Gamma-Poisson link. Gradients pull back to its natural parameters,
/// the weights' dependence on every A_Gamma(η_k) included.
impl Surrogated for NbMixtureParams {
    type Surrogate = MeanCoordinates<Mixture<Gamma>>;
    type Gradient = NbMixtureGradient;

    fn from_surrogate(
        surrogate: &MeanCoordinates<Mixture<Gamma>>,
        mu: &Vec<f64>,
        _: &[f64],
    ) -> Result<Self> {
        let family = &surrogate.family;
        let eta = family.natural_from_mean(mu)?;
        let (p, _) = family.weights(&eta)?;
        let big_k = family.components;
        let mut r = Vec::with_capacity(big_k);
        let mut s = Vec::with_capacity(big_k);
        for j in 0..big_k {
            let (alpha, beta) = Gamma::shape_rate(family.component(&eta, j))?;
            if beta >= 1.0 {
                return Err(Error::InvalidData(format!(
                    "surrogate component {j} has rate {beta} ≥ 1, outside the NB map"
                )));
            }
            r.push(alpha / (1.0 - beta));
            s.push(beta);
        }
        Ok(NbMixtureParams { weights: p, r, s })
    }

    fn pull_back(
        &self,
        surrogate: &MeanCoordinates<Mixture<Gamma>>,
        mu: &Vec<f64>,
        _: &[f64],
        g: &NbMixtureGradient,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let family = &surrogate.family;
        let eta = family.natural_from_mean(mu)?;
        let (p, r, s) = (&self.weights, &self.r, &self.s);
        let big_k = family.components;
        // p = softmax(w), w_k = θ_k + A(η_k): ∂f/∂w_k = p_k (g_k − Σ_j p_j g_j).
        let mean_g: f64 = p.iter().zip(&g.weights).map(|(a, b)| a * b).sum();
        let g_w: Vec<f64> = (0..big_k).map(|j| p[j] * (g.weights[j] - mean_g)).collect();
        let mut gradient = g_w[..big_k - 1].to_vec();
        for j in 0..big_k {
            let component_mu = Gamma.mean_from_natural(family.component(&eta, j))?;
            let beta = s[j];
            let alpha = r[j] * (1.0 - beta);
            let d_alpha = g.r[j] / (1.0 - beta);
            let d_beta = g.r[j] * alpha / (1.0 - beta).powi(2) + g.s[j];
            gradient.push(d_alpha + g_w[j] * component_mu[0]);
            gradient.push(-d_beta + g_w[j] * component_mu[1]);
        }
        Ok((gradient, Vec::new()))
    }
}

/// Unconstrained coordinates (ln r, logit s), the coordinates of the GD and BFGS baselines.
impl Unconstrained for NegativeBinomial {
    type Gradient = [f64; 2];

    fn unconstrained(&self) -> Vec<f64> {
        vec![self.r.ln(), (self.s / (1.0 - self.s)).ln()]
    }

    fn from_unconstrained(u: &[f64]) -> Result<Self> {
        if u.len() != 2 {
            return Err(Error::Dimension(format!(
                "{} unconstrained NB coordinates, 2 expected",
                u.len()
            )));
        }
        Ok(NegativeBinomial {
            r: u[0].exp(),
            s: crate::math::sigmoid(u[1]),
        })
    }

    fn gradient_in_unconstrained(&self, g: &[f64; 2]) -> Vec<f64> {
        let (r, s) = (self.r, self.s);
        vec![g[0] * r, g[1] * s * (1.0 - s)]
    }
}

/// Unconstrained coordinates u = (w, ln r, logit s) with p = softmax(w) (w starts at ln p), as
/// [`nb_mixture_nll_unconstrained`] takes them.
impl Unconstrained for NbMixtureParams {
    type Gradient = NbMixtureGradient;

    fn unconstrained(&self) -> Vec<f64> {
        let mut u: Vec<f64> = self.weights.iter().map(|p| p.ln()).collect();
        u.extend(self.r.iter().map(|r| r.ln()));
        u.extend(self.s.iter().map(|s| (s / (1.0 - s)).ln()));
        u
    }

    fn from_unconstrained(u: &[f64]) -> Result<Self> {
        let k = u.len() / 3;
        if k == 0 || u.len() != 3 * k {
            return Err(Error::Dimension(format!(
                "{} unconstrained NB-mixture coordinates are not 3k",
                u.len()
            )));
        }
        Ok(NbMixtureParams {
            weights: softmax(&u[..k]),
            r: u[k..2 * k].iter().map(|v| v.exp()).collect(),
            s: u[2 * k..]
                .iter()
                .map(|&v| crate::math::sigmoid(v))
                .collect(),
        })
    }

    fn gradient_in_unconstrained(&self, g: &NbMixtureGradient) -> Vec<f64> {
        let (p, r, s) = (&self.weights, &self.r, &self.s);
        let k = p.len();
        // p = softmax(w): ∂f/∂w_k = p_k (g_k − Σ_j p_j g_j).
        let mean_g: f64 = p.iter().zip(&g.weights).map(|(a, b)| a * b).sum();
        let mut gradient: Vec<f64> = (0..k).map(|j| p[j] * (g.weights[j] - mean_g)).collect();
        gradient.extend((0..k).map(|j| g.r[j] * r[j]));
        gradient.extend((0..k).map(|j| g.s[j] * s[j] * (1.0 - s[j])));
        gradient
    }
}

/// The mixture's mean NLL in unconstrained coordinates u = (w, ln r, logit s), p = softmax(w),
/// with its gradient (the coordinates of the GD and BFGS baselines).
pub fn nb_mixture_nll_unconstrained(counts: &Counts, u: &[f64]) -> Result<(f64, Vec<f64>)> {
    let q = NbMixtureParams::from_unconstrained(u)?;
    let (value, g) = counts.mixture_nll(&q.weights, &q.r, &q.s)?;
    Ok((value, q.gradient_in_unconstrained(&g)))
}

/// softmax(logits), shifted by the largest logit.
pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|v| (v - top).exp()).sum();
    logits.iter().map(|v| (v - top).exp() / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::math::special::negative_binomial_draw;

    /// The gradient in unconstrained coordinates and the pull-back to the Gamma-mixture
    /// surrogate's natural parameters, each against central differences.
    #[test]
    fn mixture_gradients_match_finite_differences() {
        let mut rng = Stream::new(2, &[]);
        let data: Vec<u64> = (0..300)
            .map(|i| negative_binomial_draw([2.0, 6.0][i % 2], [0.3, 0.1][i % 2], &mut rng))
            .collect();
        let counts = Counts::new(&data).unwrap();
        let (p, r, s) = (vec![0.4, 0.6], vec![2.0, 5.0], vec![0.3, 0.1]);
        let mut u: Vec<f64> = p.iter().map(|v: &f64| v.ln()).collect();
        u.extend(r.iter().map(|v: &f64| v.ln()));
        u.extend(s.iter().map(|v: &f64| (v / (1.0 - v)).ln()));
        let (_, g) = nb_mixture_nll_unconstrained(&counts, &u).unwrap();
        let h = 1e-6;
        for j in 0..u.len() {
            let (mut up, mut down) = (u.clone(), u.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (nb_mixture_nll_unconstrained(&counts, &up).unwrap().0
                - nb_mixture_nll_unconstrained(&counts, &down).unwrap().0)
                / (2.0 * h);
            assert!((numeric - g[j]).abs() < 1e-5 * (1.0 + g[j].abs()), "u{j}");
        }
        // One NB through the Gamma surrogate: ∇_η from the pull-back against differences in η.
        let gamma = MeanCoordinates { family: Gamma };
        let single = NegativeBinomialNll { counts: &counts };
        let nll_at_eta = |eta: &[f64]| {
            let mu = Gamma.mean_from_natural(eta).unwrap();
            single
                .value(&NegativeBinomial::from_surrogate(&gamma, &mu, &[]).unwrap())
                .unwrap()
        };
        let eta = [2.0, -0.3];
        let mu = Gamma.mean_from_natural(&eta).unwrap();
        let q = NegativeBinomial::from_surrogate(&gamma, &mu, &[]).unwrap();
        let (g_eta, _) = q
            .pull_back(&gamma, &mu, &[], &single.evaluate(&q).unwrap().1)
            .unwrap();
        for k in 0..2 {
            let (mut up, mut down) = (eta, eta);
            up[k] += h;
            down[k] -= h;
            let numeric = (nll_at_eta(&up) - nll_at_eta(&down)) / (2.0 * h);
            assert!(
                (numeric - g_eta[k]).abs() < 1e-6 * (1.0 + g_eta[k].abs()),
                "η{k}"
            );
        }
        // Outside the NB domain (β ≥ 1).
        let outside = Gamma.mean_from_natural(&[1.0, -1.5]).unwrap();
        assert!(NegativeBinomial::from_surrogate(&gamma, &outside, &[]).is_err());
        // Through the surrogate: f(η) = NLL(point(μ(η))) against ∇_η from the pull-back.
        let surrogate = MeanCoordinates {
            family: Mixture {
                family: Gamma,
                components: 2,
            },
        };
        let target = NbMixtureNll { counts: &counts };
        let mut mu = vec![p[0]];
        for j in 0..2 {
            let eta = Gamma::natural(r[j] * (1.0 - s[j]), s[j]);
            mu.extend(
                Gamma
                    .mean_from_natural(&eta)
                    .unwrap()
                    .iter()
                    .map(|v| p[j] * v),
            );
        }
        let at_eta = |eta: &[f64]| {
            let mu = surrogate.family.mean_from_natural(eta).unwrap();
            let q = NbMixtureParams::from_surrogate(&surrogate, &mu, &[]).unwrap();
            target.value(&q).unwrap()
        };
        let q = NbMixtureParams::from_surrogate(&surrogate, &mu, &[]).unwrap();
        let (_, g_q) = target.evaluate(&q).unwrap();
        let (g_eta, _) = q.pull_back(&surrogate, &mu, &[], &g_q).unwrap();
        let eta = surrogate.family.natural_from_mean(&mu).unwrap();
        for k in 0..eta.len() {
            let (mut up, mut down) = (eta.clone(), eta.clone());
            up[k] += h;
            down[k] -= h;
            let numeric = (at_eta(&up) - at_eta(&down)) / (2.0 * h);
            assert!(
                (numeric - g_eta[k]).abs() < 1e-5 * (1.0 + g_eta[k].abs()),
                "η{k}: {numeric} vs {}",
                g_eta[k]
            );
        }
    }
}
