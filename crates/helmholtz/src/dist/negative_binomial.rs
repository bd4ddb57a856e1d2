//! The negative binomial NB(r, s) in scipy's convention (r > 0 successes, success probability
//! s ∈ (0, 1), mean r(1 − s)/s), its mean negative log-likelihood on count data with the
//! gradient. Its Gamma surrogate (natgrad.md b.4: α = r(1 − s), β = s, so r = α/(1 − β), s = β)
//! is in [`crate::objectives::targets::negative_binomial`].

use crate::error::{Error, Result};
use crate::math::special::{digamma, ln_gamma, ln_gamma_ratio};

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

    /// Number of observations.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Always false: counts hold at least one observation.
    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// The distinct values in increasing order, each with its multiplicity.
    pub fn distinct(&self) -> &[(u64, f64)] {
        &self.values
    }

    /// The largest count.
    pub fn max(&self) -> u64 {
        self.values.last().map_or(0, |&(x, _)| x)
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
            ll += m * ln_gamma_ratio(x as f64, r);
            dr += m * digamma(x as f64 + r);
        }
        ll += -self.ln_factorials + self.n * r * s.ln() + self.sum * (1.0 - s).ln();
        dr += -self.n * digamma(r) + self.n * s.ln();
        let ds = self.n * r / s - self.sum / (1.0 - s);
        Ok((-ll / self.n, [-dr / self.n, -ds / self.n]))
    }

    /// The NLL in unconstrained coordinates (ln r, logit s) with the gradient there.
    pub fn nll_unconstrained(&self, u: &[f64]) -> Result<(f64, [f64; 2])> {
        let (r, s) = (u[0].exp(), crate::math::sigmoid(u[1]));
        let (value, [fr, fs]) = self.nll(r, s)?;
        Ok((value, [fr * r, fs * s * (1.0 - s)]))
    }
}

/// A mixture of negative binomials Σ_k p_k NB(r_k, s_k) with the gradient of its mean NLL.
#[derive(Clone, Debug, PartialEq)]
pub struct NbMixtureGradient {
    /// ∂f/∂p_k, the weights taken as free coordinates.
    pub weights: Vec<f64>,
    /// ∂f/∂r_k.
    pub r: Vec<f64>,
    /// ∂f/∂s_k.
    pub s: Vec<f64>,
}

impl Counts {
    /// The mean NLL of the mixture Σ_k p_k NB(r_k, s_k) and its gradient: with responsibilities
    /// γ_k(x), ∂f/∂p_k = −mean γ_k/p_k, ∂f/∂r_k = −mean γ_k (ψ(x + r_k) − ψ(r_k) + ln s_k),
    /// ∂f/∂s_k = −mean γ_k (r_k/s_k − x/(1 − s_k)).
    pub fn mixture_nll(
        &self,
        weights: &[f64],
        r: &[f64],
        s: &[f64],
    ) -> Result<(f64, NbMixtureGradient)> {
        let k = weights.len();
        if k == 0 || r.len() != k || s.len() != k {
            return Err(Error::Dimension(format!(
                "NB mixture with {k} weights, {} r and {} s",
                r.len(),
                s.len()
            )));
        }
        if weights.iter().any(|&p| !(p > 0.0 && p.is_finite()))
            || (weights.iter().sum::<f64>() - 1.0).abs() > 1e-9
        {
            return Err(Error::InvalidData(format!(
                "NB mixture weights {weights:?} are not a point of the open simplex"
            )));
        }
        for j in 0..k {
            if !(r[j] > 0.0 && r[j].is_finite() && s[j] > 0.0 && s[j] < 1.0) {
                return Err(Error::InvalidData(format!(
                    "NB component {j}: r = {}, s = {} outside r > 0, 0 < s < 1",
                    r[j], s[j]
                )));
            }
        }
        let base: Vec<f64> = (0..k).map(|j| r[j] * s[j].ln() + weights[j].ln()).collect();
        let mut total = 0.0;
        let mut g = NbMixtureGradient {
            weights: vec![0.0; k],
            r: vec![0.0; k],
            s: vec![0.0; k],
        };
        let mut log_terms = vec![0.0; k];
        for &(x, m) in &self.values {
            let xf = x as f64;
            for j in 0..k {
                // ln x! is common to every component: it is added once, at the end.
                log_terms[j] = base[j] + ln_gamma_ratio(xf, r[j]) + xf * (1.0 - s[j]).ln();
            }
            let top = log_terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = log_terms.iter().map(|v| (v - top).exp()).sum();
            total += m * (top + sum.ln());
            for j in 0..k {
                let gamma = (log_terms[j] - top).exp() / sum * m;
                g.weights[j] -= gamma / weights[j];
                g.r[j] -= gamma * (digamma(xf + r[j]) - digamma(r[j]) + s[j].ln());
                g.s[j] -= gamma * (r[j] / s[j] - xf / (1.0 - s[j]));
            }
        }
        for v in g.weights.iter_mut().chain(&mut g.r).chain(&mut g.s) {
            *v /= self.n;
        }
        Ok(((self.ln_factorials - total) / self.n, g))
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
        check(&|p| c.nll_unconstrained(p).unwrap(), [1.2, -0.5]);
        assert!(c.nll(5.0, 1.0).is_err());
        assert!(Counts::new(&[]).is_err());
    }

    #[test]
    fn nb_mixture_gradients_match_finite_differences() {
        let c = counts();
        let (p, r, s) = (
            vec![0.2, 0.5, 0.3],
            vec![2.0, 5.0, 9.0],
            vec![0.3, 0.1, 0.05],
        );
        // As r → ∞ with the mean fixed, NB tends to Poisson: at r = 1e12 the NLLs agree (the
        // plain ln Γ difference would cancel to garbage here).
        let (mean, _) = c.moments();
        let r_big = 1e12;
        let s_big = r_big / (r_big + mean);
        let poisson = mean - c.sum / c.n * mean.ln() + c.ln_factorials / c.n;
        let nb = c.nll(r_big, s_big).unwrap().0;
        assert!((nb - poisson).abs() < 1e-6, "{nb} vs Poisson {poisson}");
        let mixed = c
            .mixture_nll(&[0.5, 0.5], &[r_big, r_big], &[s_big, s_big])
            .unwrap()
            .0;
        assert!(
            (mixed - poisson).abs() < 1e-6,
            "{mixed} vs Poisson {poisson}"
        );
        // A mixture of two copies of one NB is that NB.
        let single = c.nll(5.0, 0.1).unwrap().0;
        let twice = c
            .mixture_nll(&[0.4, 0.6], &[5.0, 5.0], &[0.1, 0.1])
            .unwrap()
            .0;
        assert!((single - twice).abs() < 1e-12, "{single} vs {twice}");
        let (_, g) = c.mixture_nll(&p, &r, &s).unwrap();
        let h = 1e-6;
        let value = |p: &[f64], r: &[f64], s: &[f64]| c.mixture_nll(p, r, s).unwrap().0;
        for j in 0..3 {
            // Weights move along p_j − p_3 to stay on the simplex (j < 2).
            if j < 2 {
                let (mut up, mut down) = (p.clone(), p.clone());
                up[j] += h;
                up[2] -= h;
                down[j] -= h;
                down[2] += h;
                let numeric = (value(&up, &r, &s) - value(&down, &r, &s)) / (2.0 * h);
                let analytic = g.weights[j] - g.weights[2];
                assert!(
                    (numeric - analytic).abs() < 1e-6,
                    "p{j}: {numeric} vs {analytic}"
                );
            }
            let (mut up, mut down) = (r.clone(), r.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (value(&p, &up, &s) - value(&p, &down, &s)) / (2.0 * h);
            assert!(
                (numeric - g.r[j]).abs() < 1e-6,
                "r{j}: {numeric} vs {}",
                g.r[j]
            );
            let (mut up, mut down) = (s.clone(), s.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (value(&p, &r, &up) - value(&p, &r, &down)) / (2.0 * h);
            assert!(
                (numeric - g.s[j]).abs() < 1e-5,
                "s{j}: {numeric} vs {}",
                g.s[j]
            );
        }
        assert!(
            c.mixture_nll(&[0.5, 0.6], &[1.0, 1.0], &[0.5, 0.5])
                .is_err()
        );
        assert!(c.mixture_nll(&[1.0], &[1.0, 1.0], &[0.5]).is_err());
    }
}
