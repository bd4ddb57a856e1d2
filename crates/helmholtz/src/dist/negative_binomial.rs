//! The negative binomial NB(r, s) in scipy's convention (r > 0 successes, success probability
//! s ∈ (0, 1), mean r(1 − s)/s), its mean negative log-likelihood on count data with the
//! gradient, and the map from its Gamma surrogate (natgrad.md b.4): α = r(1 − s), β = s, so
//! r = α/(1 − β), s = β (the Gamma's mean α/β is the NB's mean).

use crate::error::{Error, Result};
use crate::math::special::{digamma, ln_gamma};

/// Count data as (value, multiplicity) pairs: the likelihood needs one ln Γ(x + r) per distinct
/// value.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    values: Vec<(u64, f64)>,
    n: f64,
    sum: f64,
    ln_factorials: f64,
}

impl Counts {
    /// Counts from raw observations.
    pub fn new(data: &[u64]) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::InvalidData("no counts".into()));
        }
        let mut sorted = data.to_vec();
        sorted.sort_unstable();
        let mut values: Vec<(u64, f64)> = Vec::new();
        for x in sorted {
            match values.last_mut() {
                Some((v, m)) if *v == x => *m += 1.0,
                _ => values.push((x, 1.0)),
            }
        }
        let n = data.len() as f64;
        let sum = data.iter().map(|&x| x as f64).sum();
        let ln_factorials = values
            .iter()
            .map(|&(x, m)| m * ln_gamma(x as f64 + 1.0))
            .sum();
        Ok(Counts {
            values,
            n,
            sum,
            ln_factorials,
        })
    }

    /// Mean and (population) variance.
    pub fn moments(&self) -> (f64, f64) {
        let mean = self.sum / self.n;
        let var = self
            .values
            .iter()
            .map(|&(x, m)| m * (x as f64 - mean).powi(2))
            .sum::<f64>()
            / self.n;
        (mean, var)
    }

    /// Mean negative log-likelihood of NB(r, s) and its gradient (∂/∂r, ∂/∂s):
    /// −ℓ = −(1/N) Σ [ln Γ(x + r) − ln Γ(r) − ln x! + r ln s + x ln(1 − s)].
    pub fn nll(&self, r: f64, s: f64) -> Result<(f64, [f64; 2])> {
        if !(r > 0.0 && r.is_finite() && s > 0.0 && s < 1.0) {
            return Err(Error::InvalidData(format!(
                "NB parameters r = {r}, s = {s} outside r > 0, 0 < s < 1"
            )));
        }
        let (mut ll, mut dr) = (0.0, 0.0);
        for &(x, m) in &self.values {
            ll += m * ln_gamma(x as f64 + r);
            dr += m * digamma(x as f64 + r);
        }
        ll += -self.n * ln_gamma(r) - self.ln_factorials
            + self.n * r * s.ln()
            + self.sum * (1.0 - s).ln();
        dr += -self.n * digamma(r) + self.n * s.ln();
        let ds = self.n * r / s - self.sum / (1.0 - s);
        Ok((-ll / self.n, [-dr / self.n, -ds / self.n]))
    }

    /// The NLL through the Gamma surrogate's natural parameters η = (α − 1, −β): the value and
    /// ∇_η (an error where r = α/(1 − β), s = β leave the NB domain).
    pub fn nll_gamma_natural(&self, eta: &[f64]) -> Result<(f64, [f64; 2])> {
        let (alpha, beta) = (eta[0] + 1.0, -eta[1]);
        if !(alpha > 0.0 && beta > 0.0 && beta < 1.0) {
            return Err(Error::InvalidData(format!(
                "surrogate α = {alpha}, β = {beta} maps outside the NB domain"
            )));
        }
        let (r, s) = (alpha / (1.0 - beta), beta);
        let (value, [fr, fs]) = self.nll(r, s)?;
        let d_alpha = fr / (1.0 - beta);
        let d_beta = fr * alpha / (1.0 - beta).powi(2) + fs;
        Ok((value, [d_alpha, -d_beta]))
    }

    /// The NLL in unconstrained coordinates (ln r, logit s) with the gradient there.
    pub fn nll_unconstrained(&self, u: &[f64]) -> Result<(f64, [f64; 2])> {
        let (r, s) = (u[0].exp(), crate::math::sigmoid(u[1]));
        let (value, [fr, fs]) = self.nll(r, s)?;
        Ok((value, [fr * r, fs * s * (1.0 - s)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::rng::Stream;
    use crate::math::special::negative_binomial_draw;

    /// A value with its gradient in two coordinates.
    type Objective<'a> = &'a dyn Fn(&[f64]) -> (f64, [f64; 2]);

    fn counts() -> Counts {
        let mut rng = Stream::new(2, &[]);
        let data: Vec<u64> = (0..300)
            .map(|_| negative_binomial_draw(5.0, 1.0 / 11.0, &mut rng))
            .collect();
        Counts::new(&data).unwrap()
    }

    #[test]
    fn the_pmf_sums_to_one_and_the_gradients_match_finite_differences() {
        // Σ_x p(x) = 1 for NB(3.5, 0.3).
        let total: f64 = (0..400u64)
            .map(|x| (-Counts::new(&[x]).unwrap().nll(3.5, 0.3).unwrap().0).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-10, "{total}");
        let c = counts();
        let check = |f: Objective<'_>, at: [f64; 2]| {
            let (_, g) = f(&at);
            for k in 0..2 {
                let h = 1e-6 * at[k].abs().max(1e-2);
                let (mut up, mut down) = (at, at);
                up[k] += h;
                down[k] -= h;
                let numeric = (f(&up).0 - f(&down).0) / (2.0 * h);
                assert!(
                    (numeric - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
                    "{k}: {numeric} vs {}",
                    g[k]
                );
            }
        };
        check(&|p| c.nll(p[0], p[1]).unwrap(), [4.0, 0.2]);
        check(&|p| c.nll_gamma_natural(p).unwrap(), [2.0, -0.3]);
        check(&|p| c.nll_unconstrained(p).unwrap(), [1.2, -0.5]);
        assert!(c.nll(5.0, 1.0).is_err() && c.nll_gamma_natural(&[1.0, -1.5]).is_err());
        assert!(Counts::new(&[]).is_err());
    }
}
