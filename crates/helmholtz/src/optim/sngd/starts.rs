//! Starting points of the SNGD methods, as the SNGD paper's code draws them (So & Turner, AISTATS
//! 2024): random negative-binomial starts, the NB-mixture starts spread over the range of the
//! counts, a skew-normal (or skew-t) start near N(0, s I), and a copula start near the identity
//! correlation. The paper harnesses (`helmholtz-experiments`) and `helmholtz mle`
//! ([`crate::run::mle`]) both start from these, so a fit of a user's file starts as the paper's
//! runs do.
//!
//! ```
//! use helmholtz::optim::sngd::starts::{SkewStart, nb_inits};
//!
//! let (r, s) = nb_inits(1, 0)[0];
//! assert!(r > 0.0 && (0.05..0.95).contains(&s));
//! let start = SkewStart::new(3, 1.0, 0);
//! assert_eq!(start.omega()[(1, 1)], 1.0);
//! assert!(start.xi.iter().all(|v| v.abs() < 0.1));
//! ```

use faer::Mat;

use crate::dist::copula::cov2corr;
use crate::dist::exponential_family::{ExponentialFamily, Gamma};
use crate::dist::negative_binomial::Counts;
use crate::dist::skew::SkewNormal;
use crate::error::Result;
use crate::math::rng::{Stream, ids};
use crate::math::special::gamma_draw;
use crate::objectives::targets::MIN_NU;
use crate::objectives::targets::negative_binomial::NbMixtureParams;

/// `count` starting points (r, s) of a negative binomial: r ~ Gamma with mean 5 and standard
/// deviation 2, s ~ U(0.05, 0.95), drawn from `seed`.
pub fn nb_inits(count: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Stream::new(seed, &[ids::INIT]);
    (0..count)
        .map(|_| {
            let r = gamma_draw(6.25, &mut rng) * 0.8;
            (r, 0.05 + 0.9 * rng.uniform_f64())
        })
        .collect()
}

/// The NB mixture whose components have means `means` and success probabilities `s`
/// (r = m s/(1 − s)).
pub fn nb_from_means(weights: Vec<f64>, means: &[f64], s: Vec<f64>) -> NbMixtureParams {
    let r = means
        .iter()
        .zip(&s)
        .map(|(m, s)| m * s / (1.0 - s))
        .collect();
    NbMixtureParams { weights, r, s }
}

/// `count` starting points of a `k`-component NB mixture on `counts`: equal weights, means
/// U(0.1 max x, 0.9 max x), s ~ U(0.001, 0.02), drawn from `seed`.
pub fn nb_mixture_inits(
    counts: &Counts,
    k: usize,
    count: usize,
    seed: u64,
) -> Vec<NbMixtureParams> {
    let top = counts.max() as f64;
    let mut rng = Stream::new(seed, &[ids::INIT]);
    (0..count)
        .map(|_| {
            let means: Vec<f64> = (0..k)
                .map(|_| top * (0.1 + 0.8 * rng.uniform_f64()))
                .collect();
            let s = (0..k).map(|_| 0.001 + 0.019 * rng.uniform_f64()).collect();
            nb_from_means(vec![1.0 / k as f64; k], &means, s)
        })
        .collect()
}

/// A start of a `k`-component NB mixture from the data alone: the sorted counts cut into `k`
/// groups of equal size, each component fitted to its group by the method of moments
/// (s = mean/variance, r = mean·s/(1 − s); a group without overdispersion gets s = 10/11, one of
/// zeros a mean of 1/2), with the groups' shares as weights. Unlike the random starts it puts a
/// component on every part of the range, so a fit from it does not begin with two components
/// on one cluster.
pub fn nb_mixture_quantile_start(counts: &Counts, k: usize) -> NbMixtureParams {
    let n = counts.len() as f64;
    let k = k.max(1);
    // Σ m, Σ m x, Σ m x² per group, the multiplicities split at the groups' rank boundaries.
    let mut sums = vec![[0.0f64; 3]; k];
    let mut rank = 0.0;
    for &(x, multiplicity) in counts.distinct() {
        let x = x as f64;
        let mut left = multiplicity;
        while left > 0.0 {
            let group = ((rank / n * k as f64).floor() as usize).min(k - 1);
            let boundary = (group + 1) as f64 * n / k as f64;
            let take = if group == k - 1 {
                left
            } else {
                left.min(boundary - rank).max(f64::MIN_POSITIVE)
            };
            sums[group][0] += take;
            sums[group][1] += take * x;
            sums[group][2] += take * x * x;
            rank += take;
            left -= take;
        }
    }
    let mut params = NbMixtureParams {
        weights: Vec::with_capacity(k),
        r: Vec::with_capacity(k),
        s: Vec::with_capacity(k),
    };
    for [m, sx, sxx] in sums {
        let mean = if m > 0.0 { sx / m } else { 0.0 };
        let var = if m > 0.0 { sxx / m - mean * mean } else { 0.0 };
        let mean = mean.max(0.5);
        let s = (mean / var.max(1.1 * mean)).min(10.0 / 11.0);
        params.weights.push((m / n).max(1e-6));
        params.r.push(mean * s / (1.0 - s));
        params.s.push(s);
    }
    let total: f64 = params.weights.iter().sum();
    params.weights.iter_mut().for_each(|w| *w /= total);
    params
}

/// The Gamma surrogate's mean parameters at NB(r, s): the Gamma(α = r(1 − s), β = s) of the
/// Gamma–Poisson link, where SNGD on one negative binomial starts.
pub fn nb_surrogate_mean(r: f64, s: f64) -> Result<Vec<f64>> {
    Gamma.mean_from_natural(&Gamma::natural(r * (1.0 - s), s))
}

/// The Gamma-mixture surrogate's mean parameters at the NB mixture `init`: the first k − 1
/// weights, then each component's Gamma mean parameters times its weight.
pub fn nb_mixture_surrogate_mean(init: &NbMixtureParams) -> Result<Vec<f64>> {
    let k = init.weights.len();
    let mut mu = init.weights[..k.saturating_sub(1)].to_vec();
    for j in 0..k {
        let (alpha, beta) = (init.r[j] * (1.0 - init.s[j]), init.s[j]);
        let component = Gamma.mean_from_natural(&Gamma::natural(alpha, beta))?;
        mu.extend(component.iter().map(|v| init.weights[j] * v));
    }
    Ok(mu)
}

pub use super::skew_start::SkewStart;

/// A skew-normal start from the data's moments (Azzalini & Capitanio 1999, §5): each margin's
/// sample skewness gives its δ_j (clamped inside the skew-normal's range), which gives
/// ω_j = √(S_jj/(1 − 2δ_j²/π)) and ξ_j = x̄_j − ω_j δ_j √(2/π); then Ω = S + m mᵀ with
/// m = ω ⊙ δ √(2/π) (the covariance of SN(ξ, Ω, η) is Ω − m mᵀ) and
/// η = ω⁻¹ Ω̄⁻¹δ / √(1 − δᵀΩ̄⁻¹δ), δ shrunk until δᵀΩ̄⁻¹δ < 1.
///
/// At η = 0 with ξ and Ω at the Gaussian fit the skew-normal likelihood is stationary (its
/// Fisher information is singular there), and a method that fits ξ and Ω fast lingers there;
/// this start begins on the data's side of that point. An error when the moments give no valid
/// start (a singular sample covariance).
pub fn skew_normal_moment_start(x: faer::MatRef<'_, f64>) -> Result<SkewNormal> {
    let (n, d) = (x.nrows(), x.ncols());
    let nf = n as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / nf)
        .collect();
    let cov = Mat::from_fn(d, d, |a, b| {
        (0..n)
            .map(|i| (x[(i, a)] - mean[a]) * (x[(i, b)] - mean[b]))
            .sum::<f64>()
            / nf
    });
    // The largest skewness of a skew-normal margin is 0.9953; stay inside it.
    let top = 0.99 * 0.995_271_7;
    let two_over_pi = 2.0 / std::f64::consts::PI;
    let mut mu = Vec::with_capacity(d);
    for (j, &m) in mean.iter().enumerate() {
        let third = (0..n).map(|i| (x[(i, j)] - m).powi(3)).sum::<f64>() / nf;
        let skewness = (third / cov[(j, j)].powf(1.5)).clamp(-top, top);
        // γ = (4 − π)/2 · μ³/(1 − μ²)^{3/2} with μ = δ√(2/π): c = μ/√(1 − μ²).
        let c = (2.0 * skewness / (4.0 - std::f64::consts::PI)).cbrt();
        mu.push(c / (1.0 + c * c).sqrt());
    }
    let omega_scale: Vec<f64> = (0..d)
        .map(|j| (cov[(j, j)] / (1.0 - mu[j] * mu[j])).sqrt())
        .collect();
    let shift: Vec<f64> = (0..d).map(|j| omega_scale[j] * mu[j]).collect();
    let xi: Vec<f64> = (0..d).map(|j| mean[j] - shift[j]).collect();
    let omega = Mat::from_fn(d, d, |a, b| cov[(a, b)] + shift[a] * shift[b]);
    let correlation = Mat::from_fn(d, d, |a, b| {
        omega[(a, b)] / (omega_scale[a] * omega_scale[b])
    });
    let mut delta: Vec<f64> = mu.iter().map(|m| m / two_over_pi.sqrt()).collect();
    let inverse = crate::math::linalg::cholesky(&correlation, "the sample correlation")?;
    let solve = |v: &[f64]| -> Vec<f64> {
        use faer::linalg::solvers::Solve;
        let rhs = Mat::from_fn(d, 1, |i, _| v[i]);
        let out = inverse.solve(&rhs);
        (0..d).map(|i| out[(i, 0)]).collect()
    };
    let mut solved = solve(&delta);
    let mut q: f64 = delta.iter().zip(&solved).map(|(a, b)| a * b).sum();
    if q >= 0.99 {
        let shrink = (0.99 / q).sqrt();
        delta.iter_mut().for_each(|v| *v *= shrink);
        solved.iter_mut().for_each(|v| *v *= shrink);
        q = 0.99;
    }
    let eta = (0..d)
        .map(|j| solved[j] / (1.0 - q).sqrt() / omega_scale[j])
        .collect();
    SkewNormal::new(xi, omega, eta)
}

/// The start of a t copula of dimension `dim`: R = cov2corr(I + WᵀW) with W ~ N(0, 0.01²)
/// from `seed`, and λ = ln(ν − 2) with ν = 50.
pub fn copula_start(dim: usize, seed: u64) -> Result<(Mat<f64>, f64)> {
    let mut rng = Stream::new(seed, &[ids::INIT]);
    let w = Mat::from_fn(dim, dim, |_, _| 0.01 * rng.normal());
    let r = cov2corr(&(Mat::<f64>::identity(dim, dim) + w.transpose() * &w))?;
    Ok((r, (50.0 - MIN_NU).ln()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::special::negative_binomial_draw;

    /// The quantile start puts one component on each of three separated clusters, with about
    /// their weights and means.
    #[test]
    fn the_quantile_start_puts_a_component_on_each_cluster() {
        let mut rng = Stream::new(3, &[]);
        let (r, s) = ([20.0, 20.0, 20.0], [0.5, 0.1, 0.02]); // means 20, 180, 980
        let data: Vec<u64> = (0..900)
            .map(|i| negative_binomial_draw(r[i % 3], s[i % 3], &mut rng))
            .collect();
        let start = nb_mixture_quantile_start(&Counts::new(&data).unwrap(), 3);
        let means: Vec<f64> = (0..3)
            .map(|j| start.r[j] * (1.0 - start.s[j]) / start.s[j])
            .collect();
        for (j, want) in [20.0, 180.0, 980.0].iter().enumerate() {
            assert!((means[j] / want - 1.0).abs() < 0.2, "{means:?}");
            assert!(
                (start.weights[j] - 1.0 / 3.0).abs() < 1e-9,
                "{:?}",
                start.weights
            );
        }
        // One group of zeros still gives a valid component.
        let zeros = nb_mixture_quantile_start(&Counts::new(&[0, 0, 0, 5]).unwrap(), 2);
        assert!(zeros.r.iter().all(|&r| r > 0.0) && zeros.s.iter().all(|&s| s > 0.0 && s < 1.0));
    }

    /// On skew-normal data the moment start lands near the generating (ξ, Ω, η), and on
    /// symmetric data near η = 0.
    #[test]
    fn the_moment_start_is_near_the_truth() {
        let omega = Mat::from_fn(2, 2, |a, b| if a == b { 1.0 } else { 0.3 });
        let truth = SkewNormal::new(vec![1.0, -1.0], omega, vec![3.0, -2.0]).unwrap();
        let x = truth.sample(20_000, &mut Stream::new(4, &[])).unwrap();
        let start = skew_normal_moment_start(x.as_ref()).unwrap();
        for j in 0..2 {
            assert!((start.xi[j] - truth.xi[j]).abs() < 0.2, "{:?}", start.xi);
            assert!((start.omega[(j, j)] - 1.0).abs() < 0.2, "{:?}", start.omega);
            assert!(
                start.eta[j].signum() == truth.eta[j].signum(),
                "{:?}",
                start.eta
            );
        }
        let symmetric = Mat::from_fn(2000, 2, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let start = skew_normal_moment_start(symmetric.as_ref()).unwrap();
        assert!(start.eta.iter().all(|e| e.abs() < 0.1), "{:?}", start.eta);
    }
}
