//! Linear Gaussian latent-variable models: z ~ N(0, I_H), x | z ~ N(Wz + μ, Ψ), with
//! - probabilistic PCA (Tipping & Bishop 1999): Ψ = σ²I, fitted by its closed-form
//!   maximum-likelihood solution or by EM;
//! - factor analysis: Ψ = diag(ψ), fitted by EM (Rubin & Thayer 1982).
//!
//! The exact posteriors are q_n = N(G WᵀΨ⁻¹(x_n − μ), G), G = (I + WᵀΨ⁻¹W)⁻¹ (for PPCA,
//! G = σ²M⁻¹ with M = WᵀW + σ²I). At a stationary point the ELBO equals the entropy sum
//! (entropy.md §1.4) (1/N) Σ_n H\[q_n\] − H\[N(0, I_H)\] − H\[N(·, Ψ)\].

use faer::linalg::solvers::{DenseSolveCore, Solve};
use faer::{Mat, MatRef, Side};

use crate::dist::{Conditions, EntropySum, gaussian_entropy};
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// The observation noise Ψ.
#[derive(Clone, Debug, PartialEq)]
pub enum Noise {
    /// σ²I (probabilistic PCA).
    Isotropic(f64),
    /// diag(ψ) (factor analysis).
    Diagonal(Vec<f64>),
}

impl Noise {
    /// ψ_d.
    pub fn variance(&self, d: usize) -> f64 {
        match self {
            Noise::Isotropic(s) => *s,
            Noise::Diagonal(v) => v[d],
        }
    }
}

/// A linear Gaussian model (PPCA or factor analysis).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGaussian {
    /// Loadings W (D × H).
    pub w: Mat<f64>,
    /// Mean μ (D).
    pub mean: Vec<f64>,
    /// Noise covariance Ψ.
    pub noise: Noise,
    /// Whether EM learns Ψ (true by default); with a fixed Ψ the entropy-sum identity does not
    /// apply ([`LinearGaussian::conditions`]).
    pub learn_noise: bool,
}

/// The data's mean and scatter: what PPCA depends on.
struct Moments {
    mean: Vec<f64>,
    /// S = (1/N) Σ (x − μ)(x − μ)ᵀ.
    covariance: Mat<f64>,
}

fn moments(x: MatRef<'_, f64>) -> Result<Moments> {
    let (d, n) = (x.nrows(), x.ncols());
    if n < 2 || d == 0 {
        return Err(Error::Dimension(format!(
            "a linear Gaussian model needs at least 2 points of dimension ≥ 1, got {n} of dimension {d}"
        )));
    }
    if x.col_iter().any(|c| c.iter().any(|v| !v.is_finite())) {
        return Err(Error::InvalidData(
            "data contain NaN or infinite values".into(),
        ));
    }
    let mean: Vec<f64> = (0..d)
        .map(|r| (0..n).map(|c| x[(r, c)]).sum::<f64>() / n as f64)
        .collect();
    let centred = Mat::from_fn(d, n, |r, c| x[(r, c)] - mean[r]);
    let covariance = &centred * centred.transpose() * faer::Scale(1.0 / n as f64);
    Ok(Moments { mean, covariance })
}

fn check_latents(h: usize, d: usize) -> Result<()> {
    if h == 0 || h >= d {
        return Err(Error::Config(format!(
            "a linear Gaussian model needs 1 ≤ H < D, got H = {h}, D = {d}"
        )));
    }
    Ok(())
}

impl LinearGaussian {
    /// The maximum-likelihood PPCA with `h` latents: with S = U Λ Uᵀ (eigenvalues descending),
    /// σ² = the mean of the D − H smallest eigenvalues and W = U_H (Λ_H − σ² I)^{1/2}.
    pub fn ppca_ml(x: MatRef<'_, f64>, h: usize) -> Result<Self> {
        let d = x.nrows();
        check_latents(h, d)?;
        let m = moments(x)?;
        let eigen = m
            .covariance
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::InvalidData(format!("covariance eigendecomposition: {e:?}")))?;
        // faer orders eigenvalues ascending; the largest H are the last.
        let values: Vec<f64> = (0..d).map(|i| eigen.S()[i]).collect();
        let sigma2 = values[..d - h].iter().sum::<f64>() / (d - h) as f64;
        if sigma2 <= 0.0 {
            return Err(Error::InvalidData(format!(
                "the data span at most {h} dimensions: no noise left for σ² ({sigma2})"
            )));
        }
        let u = eigen.U();
        let w = Mat::from_fn(d, h, |r, c| {
            let i = d - 1 - c;
            u[(r, i)] * (values[i] - sigma2).max(0.0).sqrt()
        });
        Ok(LinearGaussian {
            w,
            mean: m.mean,
            noise: Noise::Isotropic(sigma2),
            learn_noise: true,
        })
    }

    /// A starting point for EM: the data mean, W with N(0, 1) entries scaled by the data's mean
    /// standard deviation, and the noise at the data's variances (isotropic: their mean, for
    /// PPCA; `diagonal`: each, for factor analysis).
    pub fn random(x: MatRef<'_, f64>, h: usize, diagonal: bool, seed: u64) -> Result<Self> {
        let d = x.nrows();
        check_latents(h, d)?;
        let m = moments(x)?;
        let variances: Vec<f64> = (0..d).map(|i| m.covariance[(i, i)]).collect();
        let mean_variance = variances.iter().sum::<f64>() / d as f64;
        let mut rng = Stream::new(seed, &[ids::INIT]);
        let w = Mat::from_fn(d, h, |_, _| mean_variance.sqrt() * rng.normal());
        let noise = if diagonal {
            Noise::Diagonal(variances)
        } else {
            Noise::Isotropic(mean_variance)
        };
        Ok(LinearGaussian {
            w,
            mean: m.mean,
            noise,
            learn_noise: true,
        })
    }

    /// Latents H.
    pub fn n_latents(&self) -> usize {
        self.w.ncols()
    }

    /// Ψ⁻¹W (D × H).
    fn scaled_loadings(&self) -> Mat<f64> {
        Mat::from_fn(self.w.nrows(), self.w.ncols(), |r, c| {
            self.w[(r, c)] / self.noise.variance(r)
        })
    }

    /// The exact posteriors: means G WᵀΨ⁻¹(x_n − μ) (H × N) and the shared covariance
    /// G = (I + WᵀΨ⁻¹W)⁻¹.
    pub fn posteriors(&self, x: MatRef<'_, f64>) -> Result<(Mat<f64>, Mat<f64>)> {
        self.check(x)?;
        let centred = Mat::from_fn(x.nrows(), x.ncols(), |r, c| x[(r, c)] - self.mean[r]);
        let scaled = self.scaled_loadings();
        let mut precision = self.w.transpose() * &scaled;
        for i in 0..self.n_latents() {
            precision[(i, i)] += 1.0;
        }
        let chol = precision
            .llt(Side::Lower)
            .map_err(|e| Error::Diverged(format!("I + WᵀΨ⁻¹W is not positive definite: {e:?}")))?;
        let means = chol.solve(scaled.transpose() * &centred);
        Ok((means, chol.inverse()))
    }

    /// The ELBO per point for Gaussian posteriors N(means_n, covariance) (one shared covariance).
    pub fn elbo(
        &self,
        x: MatRef<'_, f64>,
        means: MatRef<'_, f64>,
        covariance: MatRef<'_, f64>,
    ) -> Result<f64> {
        self.check(x)?;
        let (d, n, h) = (x.nrows(), x.ncols(), self.n_latents());
        let log_det = log_det_spd(covariance)?;
        // E_q ‖x − μ − Wz‖²_Ψ⁻¹ = Σ_d [(x − μ − Wm)_d² + (W G Wᵀ)_dd] / ψ_d.
        let spread = &self.w * covariance * self.w.transpose();
        let weighted = |residual: &[f64]| {
            (0..d)
                .map(|r| {
                    (residual[r] * residual[r] + spread[(r, r)]) / (2.0 * self.noise.variance(r))
                })
                .sum::<f64>()
        };
        let trace = (0..h).map(|i| covariance[(i, i)]).sum::<f64>();
        let fitted = &self.w * means;
        let residual_of = |c: usize| -> Vec<f64> {
            (0..d)
                .map(|r| x[(r, c)] - self.mean[r] - fitted[(r, c)])
                .collect()
        };
        let mut total = 0.0;
        for c in 0..n {
            let norm: f64 = (0..h).map(|i| means[(i, c)].powi(2)).sum();
            total += -0.5 * (norm + trace) - weighted(&residual_of(c));
        }
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        let noise_log_det: f64 = (0..d).map(|r| self.noise.variance(r).ln()).sum();
        Ok(
            total / n as f64 - 0.5 * (h as f64 * log_2pi + d as f64 * log_2pi + noise_log_det)
                + gaussian_entropy(h, log_det),
        )
    }

    /// The exact log-likelihood per point: −½ (D ln 2π + ln|C| + tr(C⁻¹S)), C = WWᵀ + Ψ.
    pub fn log_likelihood(&self, x: MatRef<'_, f64>) -> Result<f64> {
        self.check(x)?;
        let d = x.nrows();
        let mut c = &self.w * self.w.transpose();
        for i in 0..d {
            c[(i, i)] += self.noise.variance(i);
        }
        let centred = Mat::from_fn(d, x.ncols(), |r, col| x[(r, col)] - self.mean[r]);
        let scatter = &centred * centred.transpose() * faer::Scale(1.0 / x.ncols() as f64);
        let chol = c
            .llt(Side::Lower)
            .map_err(|e| Error::Diverged(format!("WWᵀ + Ψ is not positive definite: {e:?}")))?;
        let solved = chol.solve(&scatter);
        let trace = (0..d).map(|i| solved[(i, i)]).sum::<f64>();
        let log_det = log_det_spd(c.as_ref())?;
        Ok(-0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det + trace))
    }

    /// log N(x_n; μ, C) for each column of `x`, C = WWᵀ + Ψ.
    pub fn log_likelihoods(&self, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        self.check(x)?;
        let chol = self
            .marginal_covariance()
            .llt(Side::Lower)
            .map_err(|e| Error::Diverged(format!("WWᵀ + Ψ is not positive definite: {e:?}")))?;
        let d = x.nrows();
        let log_det = 2.0 * (0..d).map(|i| chol.L()[(i, i)].ln()).sum::<f64>();
        // ‖L⁻¹(x − μ)‖² per point.
        let mut solved = Mat::from_fn(d, x.ncols(), |r, c| x[(r, c)] - self.mean[r]);
        faer::linalg::triangular_solve::solve_lower_triangular_in_place(
            chol.L(),
            solved.as_mut(),
            faer::Par::Seq,
        );
        let constant = d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det;
        Ok((0..x.ncols())
            .map(|c| -0.5 * (constant + (0..d).map(|r| solved[(r, c)].powi(2)).sum::<f64>()))
            .collect())
    }

    /// C = WWᵀ + Ψ, the covariance of x.
    pub fn marginal_covariance(&self) -> Mat<f64> {
        let mut c = &self.w * self.w.transpose();
        for i in 0..c.nrows() {
            c[(i, i)] += self.noise.variance(i);
        }
        c
    }

    /// `n` draws x = μ + Wz + ε, z ~ N(0, I_H), ε ~ N(0, Ψ) (D × n), from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Mat<f64> {
        let (d, h) = (self.w.nrows(), self.n_latents());
        let mut rng = Stream::new(seed, &[ids::SAMPLE]);
        let mut x = Mat::zeros(d, n);
        for c in 0..n {
            let z: Vec<f64> = (0..h).map(|_| rng.normal()).collect();
            for r in 0..d {
                let signal: f64 = (0..h).map(|k| self.w[(r, k)] * z[k]).sum();
                x[(r, c)] = self.mean[r] + signal + self.noise.variance(r).sqrt() * rng.normal();
            }
        }
        x
    }

    /// What the entropy-sum identity needs, as this model is trained.
    pub fn conditions(&self) -> Conditions {
        Conditions {
            learned_observation_variance: self.learn_noise,
            ..Conditions::plain()
        }
    }

    /// The entropy sum for posteriors with the shared `covariance`: the mean posterior entropy
    /// minus the prior entropy (H/2) ln(2πe) minus the noise entropy ½ Σ_d ln(2πeψ_d).
    pub fn entropy_sum(&self, covariance: MatRef<'_, f64>, elbo: f64) -> Result<EntropySum> {
        let h = self.n_latents();
        let d = self.w.nrows();
        let noise_log_det: f64 = (0..d).map(|r| self.noise.variance(r).ln()).sum();
        Ok(EntropySum::new(
            elbo,
            gaussian_entropy(h, log_det_spd(covariance)?),
            gaussian_entropy(h, 0.0),
            gaussian_entropy(d, noise_log_det),
        ))
    }

    /// One EM step on the data `x` (the mean stays the data mean): with the posteriors' moments,
    /// W = [Σ (x_n − μ) m_nᵀ] [Σ E zzᵀ]⁻¹, then the noise from the expected residuals
    /// (1/N) Σ_n E(x_n − μ − Wz)², averaged over dimensions for PPCA (Tipping & Bishop 1999,
    /// §3.2), per dimension for factor analysis (unless `learn_noise` is off).
    pub fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<()> {
        let (means, covariance) = self.posteriors(x)?;
        let (d, n) = (x.nrows(), x.ncols());
        let centred = Mat::from_fn(d, n, |r, c| x[(r, c)] - self.mean[r]);
        // Σ_n E[z zᵀ] = N G + Σ_n m_n m_nᵀ.
        let second = &means * means.transpose() + &covariance * faer::Scale(n as f64);
        let cross = &centred * means.transpose();
        let chol = second
            .llt(Side::Lower)
            .map_err(|e| Error::Diverged(format!("Σ E[zzᵀ] is not positive definite: {e:?}")))?;
        // W = cross · second⁻¹ (second is symmetric).
        let w = chol.solve(cross.transpose()).transpose().to_owned();
        // (1/N) Σ_n E(x_n − μ − Wz)_d² = S_dd − 2 (W crossᵀ)_dd / N + (W second Wᵀ)_dd / N.
        let fitted_cross = &w * cross.transpose();
        let fitted_second = &w * &second * w.transpose();
        let residual: Vec<f64> = (0..d)
            .map(|r| {
                let s = (0..n).map(|c| centred[(r, c)].powi(2)).sum::<f64>();
                (s - 2.0 * fitted_cross[(r, r)] + fitted_second[(r, r)]) / n as f64
            })
            .collect();
        let noise = match self.noise {
            _ if !self.learn_noise => self.noise.clone(),
            Noise::Isotropic(_) => Noise::Isotropic(residual.iter().sum::<f64>() / d as f64),
            Noise::Diagonal(_) => Noise::Diagonal(residual),
        };
        let ok = (0..d).all(|r| {
            let v = noise.variance(r);
            v.is_finite() && v > 0.0
        });
        if !ok {
            return Err(Error::Diverged(format!(
                "EM: a noise variance is not positive ({noise:?})"
            )));
        }
        self.w = w;
        self.noise = noise;
        Ok(())
    }

    fn check(&self, x: MatRef<'_, f64>) -> Result<()> {
        if x.nrows() != self.w.nrows() || x.ncols() == 0 {
            return Err(Error::Dimension(format!(
                "{}×{} data for a linear Gaussian model of dimension {}",
                x.nrows(),
                x.ncols(),
                self.w.nrows()
            )));
        }
        Ok(())
    }
}

/// ln det of a symmetric positive-definite matrix, by Cholesky.
fn log_det_spd(a: MatRef<'_, f64>) -> Result<f64> {
    let chol = a
        .llt(Side::Lower)
        .map_err(|e| Error::Diverged(format!("a covariance is not positive definite: {e:?}")))?;
    let l = chol.L();
    Ok(2.0 * (0..a.nrows()).map(|i| l[(i, i)].ln()).sum::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N points from a PPCA with 3 latents in 8 dimensions, noise 0.3, and a non-zero mean.
    fn data(n: usize, seed: u64) -> Mat<f64> {
        let mut rng = Stream::new(seed, &[]);
        let w = Mat::from_fn(8, 3, |_, _| rng.normal());
        let mean: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        let mut x = Mat::zeros(8, n);
        for c in 0..n {
            let z: Vec<f64> = (0..3).map(|_| rng.normal()).collect();
            for r in 0..8 {
                x[(r, c)] =
                    mean[r] + (0..3).map(|k| w[(r, k)] * z[k]).sum::<f64>() + 0.3 * rng.normal();
            }
        }
        x
    }

    /// `steps` EM steps, checking that none lowers the likelihood; returns the final
    /// log-likelihood and the relative gap every `every` steps (before the step).
    fn run_em(
        model: &mut LinearGaussian,
        x: &Mat<f64>,
        steps: usize,
        every: usize,
    ) -> (f64, Vec<f64>) {
        let mut previous = f64::NEG_INFINITY;
        let mut gaps = Vec::new();
        for step in 0..steps {
            if step % every == 0 {
                gaps.push(elbo_and_sum(model, x).1.relative_gap());
            }
            model.em_step(x.as_ref()).unwrap();
            let ll = model.log_likelihood(x.as_ref()).unwrap();
            assert!(
                ll >= previous - 1e-10,
                "EM step {step} lowered the likelihood"
            );
            previous = ll;
        }
        (previous, gaps)
    }

    fn elbo_and_sum(model: &LinearGaussian, x: &Mat<f64>) -> (f64, EntropySum) {
        let (means, covariance) = model.posteriors(x.as_ref()).unwrap();
        let elbo = model
            .elbo(x.as_ref(), means.as_ref(), covariance.as_ref())
            .unwrap();
        (elbo, model.entropy_sum(covariance.as_ref(), elbo).unwrap())
    }

    #[test]
    fn at_the_maximum_likelihood_solution_the_elbo_is_the_entropy_sum() {
        let x = data(5000, 1);
        let model = LinearGaussian::ppca_ml(x.as_ref(), 3).unwrap();
        let (elbo, sum) = elbo_and_sum(&model, &x);
        // Exact posteriors: the ELBO is the log-likelihood.
        let ll = model.log_likelihood(x.as_ref()).unwrap();
        assert!(((elbo - ll) / ll).abs() < 1e-12, "{elbo} vs {ll}");
        assert!(sum.relative_gap() < 1e-10, "{sum:?}");
        // Away from the stationary point (W scaled) the ELBO with exact posteriors is still the
        // log-likelihood, but the entropy sum no longer equals it.
        let mut off = model.clone();
        off.w = &off.w * faer::Scale(1.3);
        let (elbo, sum) = elbo_and_sum(&off, &x);
        assert!(((elbo - off.log_likelihood(x.as_ref()).unwrap()) / elbo).abs() < 1e-12);
        assert!(sum.relative_gap() > 1e-3, "{sum:?}");
    }

    #[test]
    fn em_converges_to_the_maximum_likelihood_and_closes_the_gap() {
        let x = data(1000, 2);
        let ml = LinearGaussian::ppca_ml(x.as_ref(), 3).unwrap();
        let target = ml.log_likelihood(x.as_ref()).unwrap();
        let mut model = LinearGaussian::random(x.as_ref(), 3, false, 5).unwrap();
        let (previous, gaps) = run_em(&mut model, &x, 1000, 1);
        assert!(
            (previous - target).abs() < 1e-9 * target.abs(),
            "{previous} vs {target}"
        );
        // The gap is first order in the distance to the stationary point (the likelihood is
        // second order), so it closes more slowly than the likelihood converges.
        assert!(
            gaps[0] > 1e-3 && gaps[999] < 1e-9,
            "gaps {} → {}",
            gaps[0],
            gaps[999]
        );
        assert!((model.noise.variance(0) - ml.noise.variance(0)).abs() < 1e-8);
    }

    #[test]
    fn factor_analysis_em_raises_the_likelihood_and_ends_at_the_entropy_sum() {
        // Heteroscedastic noise: factor analysis fits it, PPCA cannot.
        let mut x = data(1000, 4);
        let mut rng = Stream::new(8, &[]);
        for c in 0..x.ncols() {
            for r in 0..x.nrows() {
                x[(r, c)] += (0.05 + 0.05 * r as f64) * rng.normal();
            }
        }
        let mut model = LinearGaussian::random(x.as_ref(), 3, true, 6).unwrap();
        let (previous, mut gaps) = run_em(&mut model, &x, 2000, 500);
        let (elbo, sum) = elbo_and_sum(&model, &x);
        assert!(
            ((elbo - previous) / previous).abs() < 1e-12,
            "{elbo} vs {previous}"
        );
        // EM for factor analysis converges linearly and slowly; the gap shrinks all along.
        gaps.push(sum.relative_gap());
        assert!(gaps.windows(2).all(|g| g[1] < g[0]), "{gaps:?}");
        assert!(gaps[0] > 1e-2 && sum.relative_gap() < 1e-6, "{gaps:?}");
        // The fitted noise follows the added per-dimension noise.
        let psi: Vec<f64> = (0..8).map(|r| model.noise.variance(r)).collect();
        assert!(
            psi[5..].iter().sum::<f64>() > 1.5 * psi[..3].iter().sum::<f64>(),
            "{psi:?}"
        );
        let ppca = LinearGaussian::ppca_ml(x.as_ref(), 3).unwrap();
        assert!(previous > ppca.log_likelihood(x.as_ref()).unwrap());
    }

    #[test]
    fn with_a_fixed_noise_variance_the_identity_does_not_apply_and_says_so() {
        let x = data(1000, 9);
        let mut model = LinearGaussian::random(x.as_ref(), 3, false, 2).unwrap();
        model.noise = Noise::Isotropic(1.0);
        model.learn_noise = false;
        let (_, gaps) = run_em(&mut model, &x, 500, 100);
        let (_, sum) = elbo_and_sum(&model, &x);
        // EM has converged in W (the gap no longer moves), but the gap stays far from zero.
        assert!(
            (sum.relative_gap() - gaps[4]).abs() < 1e-6 * gaps[4],
            "{gaps:?}"
        );
        assert!(sum.relative_gap() > 1e-2, "{sum:?}");
        let notice = model
            .conditions()
            .violation()
            .expect("a fixed σ² breaks the identity");
        assert!(notice.contains("observation variance is fixed"), "{notice}");
        let mut criterion = crate::dist::GapCriterion::new(1.0, 1);
        assert!(!criterion.observe(&sum, &model.conditions()));
        // Learned again, the same model satisfies it.
        model.learn_noise = true;
        assert!(model.conditions().violation().is_none());
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let x = data(50, 3);
        assert!(LinearGaussian::ppca_ml(x.as_ref(), 8).is_err());
        assert!(LinearGaussian::ppca_ml(x.as_ref(), 0).is_err());
        let mut bad = x.clone();
        bad[(2, 7)] = f64::NAN;
        assert!(LinearGaussian::ppca_ml(bad.as_ref(), 3).is_err());
        let model = LinearGaussian::ppca_ml(x.as_ref(), 3).unwrap();
        assert!(model.log_likelihood(x.subrows(0, 7)).is_err());
    }

    #[test]
    fn per_point_log_likelihoods_average_to_the_log_likelihood_and_samples_follow_the_model() {
        let x = data(2000, 6);
        let model = LinearGaussian::ppca_ml(x.as_ref(), 3).unwrap();
        let each = model.log_likelihoods(x.as_ref()).unwrap();
        let mean = each.iter().sum::<f64>() / each.len() as f64;
        let ll = model.log_likelihood(x.as_ref()).unwrap();
        assert!((mean - ll).abs() < 1e-11 * ll.abs(), "{mean} vs {ll}");
        // A point's density does not depend on the batch it is scored in.
        let alone = model.log_likelihoods(x.subcols(7, 1)).unwrap();
        assert!((alone[0] - each[7]).abs() < 1e-12);

        // The model's own draws: their mean is μ, and their mean log-density is −H[N(μ, C)]
        // (the log-density of a D-dimensional Gaussian has standard deviation √(D/2)).
        let n = 20_000;
        let draws = model.sample(n, 9);
        for r in 0..8 {
            let m = (0..n).map(|c| draws[(r, c)]).sum::<f64>() / n as f64;
            let se = (model.marginal_covariance()[(r, r)] / n as f64).sqrt();
            assert!(
                (m - model.mean[r]).abs() < 5.0 * se,
                "mean {r}: {m} vs {}",
                model.mean[r]
            );
        }
        let own = model.log_likelihood(draws.as_ref()).unwrap();
        let negative_entropy = -gaussian_entropy(
            8,
            log_det_spd(model.marginal_covariance().as_ref()).unwrap(),
        );
        let se = (8.0f64 / 2.0).sqrt() / (n as f64).sqrt();
        assert!(
            (own - negative_entropy).abs() < 5.0 * se,
            "{own} vs {negative_entropy}"
        );
        // Another seed, other draws.
        assert_ne!(model.sample(3, 9), model.sample(3, 10));
    }
}
