//! Finite mixtures fitted by EM: Gaussian components with diagonal or full covariances, and
//! Bernoulli components (products of independent bits).
//!
//! With the exact posteriors (responsibilities) r_n = p(c | x_n) the ELBO is the
//! log-likelihood, and at an EM fixed point it equals the entropy sum (entropy.md §1.4)
//! (1/N) Σ_n H\[r_n\] − H\[π\] − (1/N) Σ_n Σ_c r_nc H\[p(x | c)\].

use faer::{Mat, MatRef, Side};

use crate::dist::{EntropySum, bernoulli_entropy, categorical_entropy, gaussian_entropy};
use crate::error::{Error, Result};
use crate::math::linalg::matmul_by_columns;
use crate::math::logsumexp;
use crate::math::rng::{Stream, ids};

/// The component family.
#[derive(Clone, Debug, PartialEq)]
pub enum Components {
    /// N(μ_c, diag(v_c)): means and variances, D × C each.
    DiagonalGaussian {
        /// μ_c as columns.
        means: Mat<f64>,
        /// v_c as columns.
        variances: Mat<f64>,
    },
    /// N(μ_c, Σ_c).
    FullGaussian {
        /// μ_c as columns.
        means: Mat<f64>,
        /// Σ_c.
        covariances: Vec<Mat<f64>>,
    },
    /// Π_d Bern(p_cd): probabilities, D × C.
    Bernoulli {
        /// p_c as columns.
        probs: Mat<f64>,
    },
}

/// A mixture model.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixture {
    /// Mixing weights π (C).
    pub weights: Vec<f64>,
    /// The components.
    pub components: Components,
    /// How many values the last M-step held at the variance floor: diagonal variances raised to
    /// it, or singular full covariances that got it added. 0 at a regular EM fixed point; above
    /// 0 the fixed point is not the ELBO's, and the entropy-sum identity does not apply.
    pub floored: usize,
}

/// Which family [`Mixture::init`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Gaussian, diagonal covariances.
    DiagonalGaussian,
    /// Gaussian, full covariances.
    FullGaussian,
    /// Bernoulli.
    Bernoulli,
}

/// Variance floor of the Gaussian M-step, relative to the data's mean variance: a variance below
/// it is raised to it, and a singular covariance gets it added to its diagonal, so a component
/// cannot collapse onto one point. It never binds at a regular EM fixed point, where the
/// identity needs the unmodified M-step.
const VARIANCE_FLOOR: f64 = 1e-9;

impl Mixture {
    /// `c` components started at `c` distinct data points drawn from `seed`, with equal weights
    /// and the data's variances (Gaussian) or probabilities pulled halfway to ½ (Bernoulli).
    pub fn init(x: MatRef<'_, f64>, c: usize, family: Family, seed: u64) -> Result<Self> {
        let (d, n) = (x.nrows(), x.ncols());
        check_data(x, family)?;
        if c == 0 || c > n {
            return Err(Error::Config(format!(
                "a mixture needs 1 ≤ C ≤ N components, got C = {c}, N = {n}"
            )));
        }
        let picks: Vec<usize> = Stream::new(seed, &[ids::INIT]).permutation(n)[..c].to_vec();
        let means = Mat::from_fn(d, c, |r, k| x[(r, picks[k])]);
        let mean: Vec<f64> = (0..d)
            .map(|r| (0..n).map(|j| x[(r, j)]).sum::<f64>() / n as f64)
            .collect();
        let variance: Vec<f64> = (0..d)
            .map(|r| (0..n).map(|j| (x[(r, j)] - mean[r]).powi(2)).sum::<f64>() / n as f64)
            .collect();
        let components = match family {
            Family::DiagonalGaussian => Components::DiagonalGaussian {
                means,
                variances: Mat::from_fn(d, c, |r, _| variance[r].max(f64::MIN_POSITIVE)),
            },
            Family::FullGaussian => Components::FullGaussian {
                means,
                covariances: vec![
                    Mat::from_fn(d, d, |i, j| if i == j {
                        variance[i].max(f64::MIN_POSITIVE)
                    } else {
                        0.0
                    });
                    c
                ],
            },
            Family::Bernoulli => Components::Bernoulli {
                probs: Mat::from_fn(d, c, |r, k| 0.25 + 0.5 * x[(r, picks[k])]),
            },
        };
        Ok(Mixture {
            weights: vec![1.0 / c as f64; c],
            components,
            floored: 0,
        })
    }

    /// Number of components.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    fn family(&self) -> Family {
        match self.components {
            Components::DiagonalGaussian { .. } => Family::DiagonalGaussian,
            Components::FullGaussian { .. } => Family::FullGaussian,
            Components::Bernoulli { .. } => Family::Bernoulli,
        }
    }

    fn dim(&self) -> usize {
        match &self.components {
            Components::DiagonalGaussian { means, .. } | Components::FullGaussian { means, .. } => {
                means.nrows()
            }
            Components::Bernoulli { probs } => probs.nrows(),
        }
    }

    /// log π_c + log p(x_n | c) (C × N).
    fn joint_log(&self, x: MatRef<'_, f64>) -> Result<Mat<f64>> {
        let (c, n, d) = (self.n_components(), x.ncols(), x.nrows());
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let mut out = Mat::zeros(c, n);
        match &self.components {
            Components::DiagonalGaussian { means, variances } => {
                for k in 0..c {
                    let log_det: f64 = (0..d).map(|r| variances[(r, k)].ln()).sum();
                    for j in 0..n {
                        let q: f64 = (0..d)
                            .map(|r| (x[(r, j)] - means[(r, k)]).powi(2) / variances[(r, k)])
                            .sum();
                        out[(k, j)] = -0.5 * (d as f64 * ln_2pi + log_det + q);
                    }
                }
            }
            Components::FullGaussian { means, covariances } => {
                for k in 0..c {
                    let chol = covariances[k].llt(Side::Lower).map_err(|e| {
                        Error::Diverged(format!(
                            "component {k}: covariance not positive definite ({e:?})"
                        ))
                    })?;
                    let l = chol.L();
                    let log_det = 2.0 * (0..d).map(|i| l[(i, i)].ln()).sum::<f64>();
                    let centred = Mat::from_fn(d, n, |r, j| x[(r, j)] - means[(r, k)]);
                    // ‖L⁻¹(x − μ)‖².
                    let mut solved = centred;
                    faer::linalg::triangular_solve::solve_lower_triangular_in_place(
                        l,
                        solved.as_mut(),
                        faer::Par::Seq,
                    );
                    for j in 0..n {
                        let q: f64 = (0..d).map(|r| solved[(r, j)].powi(2)).sum();
                        out[(k, j)] = -0.5 * (d as f64 * ln_2pi + log_det + q);
                    }
                }
            }
            Components::Bernoulli { probs } => {
                // Σ_d x_d ln p_d + (1 − x_d) ln(1 − p_d) = Σ_d ln(1 − p_d) + Σ_d x_d ln(p_d/(1 − p_d))
                // for binary x, as one product. A probability of exactly 0 or 1 (a pixel that
                // is constant within a component) gets logs clamped at ln(1e-300) ≈ −690.8
                // instead of −∞, so a point that contradicts it has a responsibility of
                // e^{−690} (zero in double precision) rather than NaN.
                let clamped = |p: f64| p.max(1e-300).ln();
                let log_odds = Mat::from_fn(c, d, |k, r| {
                    clamped(probs[(r, k)]) - clamped(1.0 - probs[(r, k)])
                });
                let base: Vec<f64> = (0..c)
                    .map(|k| (0..d).map(|r| clamped(1.0 - probs[(r, k)])).sum())
                    .collect();
                matmul_by_columns(out.as_mut(), log_odds.as_ref(), x, 1.0, false);
                for j in 0..n {
                    for k in 0..c {
                        out[(k, j)] += base[k];
                    }
                }
            }
        }
        for k in 0..c {
            let log_weight = self.weights[k].ln();
            for j in 0..n {
                out[(k, j)] += log_weight;
            }
        }
        Ok(out)
    }

    /// The responsibilities r_n = p(c | x_n) (C × N) and the log-likelihood per point.
    pub fn responsibilities(&self, x: MatRef<'_, f64>) -> Result<(Mat<f64>, f64)> {
        let (resp, log_px) = self.posteriors_and_evidence(x)?;
        Ok((resp, log_px.iter().sum::<f64>() / log_px.len() as f64))
    }

    /// log p(x_n) for each column of `x`.
    pub fn log_likelihoods(&self, x: MatRef<'_, f64>) -> Result<Vec<f64>> {
        self.posteriors_and_evidence(x).map(|(_, log_px)| log_px)
    }

    /// The responsibilities (C × N) and log p(x_n) per point.
    fn posteriors_and_evidence(&self, x: MatRef<'_, f64>) -> Result<(Mat<f64>, Vec<f64>)> {
        self.check(x)?;
        let joint = self.joint_log(x)?;
        let (c, n) = (joint.nrows(), joint.ncols());
        let mut resp = Mat::zeros(c, n);
        let mut evidence = Vec::with_capacity(n);
        for j in 0..n {
            let column: Vec<f64> = (0..c).map(|k| joint[(k, j)]).collect();
            let log_px = logsumexp(&column);
            if !log_px.is_finite() {
                return Err(Error::Diverged(format!(
                    "point {j} has likelihood {log_px}"
                )));
            }
            evidence.push(log_px);
            for k in 0..c {
                resp[(k, j)] = (column[k] - log_px).exp();
            }
        }
        Ok((resp, evidence))
    }

    /// `n` draws from the mixture (D × n), from `seed`: a component c ~ π, then x ~ p(x | c).
    /// Returns the draws and their components.
    pub fn sample(&self, n: usize, seed: u64) -> Result<(Mat<f64>, Vec<usize>)> {
        let d = self.dim();
        let mut rng = Stream::new(seed, &[ids::SAMPLE]);
        // Cholesky factors of the full covariances, once.
        let factors: Vec<Mat<f64>> = match &self.components {
            Components::FullGaussian { covariances, .. } => covariances
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    s.llt(Side::Lower)
                        .map(|chol| chol.L().to_owned())
                        .map_err(|e| {
                            Error::Diverged(format!(
                                "component {k}: covariance not positive definite ({e:?})"
                            ))
                        })
                })
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        let mut x = Mat::zeros(d, n);
        let mut labels = Vec::with_capacity(n);
        for j in 0..n {
            let u = rng.uniform_f64();
            let mut k = 0;
            let mut cumulative = self.weights[0];
            while u >= cumulative && k + 1 < self.weights.len() {
                k += 1;
                cumulative += self.weights[k];
            }
            labels.push(k);
            match &self.components {
                Components::DiagonalGaussian { means, variances } => {
                    for r in 0..d {
                        x[(r, j)] = means[(r, k)] + variances[(r, k)].sqrt() * rng.normal();
                    }
                }
                Components::FullGaussian { means, .. } => {
                    let eps: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
                    let l = &factors[k];
                    for r in 0..d {
                        x[(r, j)] =
                            means[(r, k)] + (0..=r).map(|c| l[(r, c)] * eps[c]).sum::<f64>();
                    }
                }
                Components::Bernoulli { probs } => {
                    for r in 0..d {
                        x[(r, j)] = f64::from(u8::from(rng.uniform_f64() < probs[(r, k)]));
                    }
                }
            }
        }
        Ok((x, labels))
    }

    /// The ELBO per point with posteriors `resp` (C × N, columns summing to 1).
    pub fn elbo(&self, x: MatRef<'_, f64>, resp: MatRef<'_, f64>) -> Result<f64> {
        self.check(x)?;
        let joint = self.joint_log(x)?;
        let (c, n) = (joint.nrows(), joint.ncols());
        let mut total = 0.0;
        for j in 0..n {
            let column: Vec<f64> = (0..c).map(|k| resp[(k, j)]).collect();
            total += categorical_entropy(&column);
            total += (0..c)
                .filter(|&k| resp[(k, j)] > 0.0)
                .map(|k| resp[(k, j)] * joint[(k, j)])
                .sum::<f64>();
        }
        Ok(total / n as f64)
    }

    /// The entropy decomposition of `elbo` for posteriors `resp`.
    pub fn entropy_sum(&self, resp: MatRef<'_, f64>, elbo: f64) -> EntropySum {
        let (c, n) = (resp.nrows(), resp.ncols());
        let component: Vec<f64> = (0..c).map(|k| self.component_entropy(k)).collect();
        let mut posterior = 0.0;
        let mut observable = 0.0;
        for j in 0..n {
            let column: Vec<f64> = (0..c).map(|k| resp[(k, j)]).collect();
            posterior += categorical_entropy(&column);
            observable += (0..c).map(|k| column[k] * component[k]).sum::<f64>();
        }
        EntropySum::new(
            elbo,
            posterior / n as f64,
            categorical_entropy(&self.weights),
            observable / n as f64,
        )
    }

    /// H[p(x | c)].
    pub fn component_entropy(&self, k: usize) -> f64 {
        let d = self.dim();
        match &self.components {
            Components::DiagonalGaussian { variances, .. } => {
                gaussian_entropy(d, (0..d).map(|r| variances[(r, k)].ln()).sum())
            }
            Components::FullGaussian { covariances, .. } => {
                let l = covariances[k]
                    .llt(Side::Lower)
                    .map(|chol| 2.0 * (0..d).map(|i| chol.L()[(i, i)].ln()).sum::<f64>())
                    .unwrap_or(f64::NAN);
                gaussian_entropy(d, l)
            }
            Components::Bernoulli { probs } => {
                (0..d).map(|r| bernoulli_entropy(probs[(r, k)])).sum()
            }
        }
    }

    /// One EM step; returns the log-likelihood per point before it.
    pub fn em_step(&mut self, x: MatRef<'_, f64>) -> Result<f64> {
        let (resp, log_likelihood) = self.responsibilities(x)?;
        let (c, n, d) = (self.n_components(), x.ncols(), x.nrows());
        let mass: Vec<f64> = (0..c).map(|k| (0..n).map(|j| resp[(k, j)]).sum()).collect();
        if let Some(k) = mass.iter().position(|&m| m <= 0.0) {
            return Err(Error::Diverged(format!(
                "component {k} has no responsibility left"
            )));
        }
        self.weights = mass.iter().map(|m| m / n as f64).collect();
        let means = Mat::from_fn(d, c, |r, k| {
            (0..n).map(|j| resp[(k, j)] * x[(r, j)]).sum::<f64>() / mass[k]
        });
        let scale = (0..d)
            .map(|r| {
                let m = (0..n).map(|j| x[(r, j)]).sum::<f64>() / n as f64;
                (0..n).map(|j| (x[(r, j)] - m).powi(2)).sum::<f64>() / n as f64
            })
            .sum::<f64>()
            / d as f64;
        let floor = VARIANCE_FLOOR * scale;
        let mut floored = 0;
        self.components = match self.family() {
            Family::DiagonalGaussian => Components::DiagonalGaussian {
                variances: Mat::from_fn(d, c, |r, k| {
                    let variance = (0..n)
                        .map(|j| resp[(k, j)] * (x[(r, j)] - means[(r, k)]).powi(2))
                        .sum::<f64>()
                        / mass[k];
                    if variance < floor {
                        floored += 1;
                    }
                    variance.max(floor)
                }),
                means,
            },
            Family::FullGaussian => Components::FullGaussian {
                covariances: (0..c)
                    .map(|k| {
                        let weighted = Mat::from_fn(d, n, |r, j| {
                            resp[(k, j)].sqrt() * (x[(r, j)] - means[(r, k)])
                        });
                        let mut s = &weighted * weighted.transpose() * faer::Scale(1.0 / mass[k]);
                        if s.llt(Side::Lower).is_err() {
                            floored += 1;
                            for i in 0..d {
                                s[(i, i)] += floor;
                            }
                        }
                        s
                    })
                    .collect(),
                means,
            },
            Family::Bernoulli => Components::Bernoulli { probs: means },
        };
        self.floored = floored;
        Ok(log_likelihood)
    }

    fn check(&self, x: MatRef<'_, f64>) -> Result<()> {
        if x.nrows() != self.dim() || x.ncols() == 0 {
            return Err(Error::Dimension(format!(
                "{}×{} data for a mixture of dimension {}",
                x.nrows(),
                x.ncols(),
                self.dim()
            )));
        }
        Ok(())
    }
}

fn check_data(x: MatRef<'_, f64>, family: Family) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::Dimension("a mixture needs non-empty data".into()));
    }
    let bad = x.col_iter().any(|c| {
        c.iter()
            .any(|&v| !v.is_finite() || (family == Family::Bernoulli && v != 0.0 && v != 1.0))
    });
    if bad {
        return Err(Error::InvalidData(match family {
            Family::Bernoulli => "Bernoulli mixtures need binary (0/1) data".into(),
            _ => "data contain NaN or infinite values".into(),
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters(n: usize, seed: u64) -> Mat<f64> {
        let mut rng = Stream::new(seed, &[]);
        let centres = [(-3.0, 0.0), (2.0, 2.5), (1.5, -2.0)];
        let scales = [(1.0, 0.5), (0.6, 1.2), (0.8, 0.8)];
        let mut x = Mat::zeros(2, n);
        for j in 0..n {
            let k = j % 3;
            let (a, b) = (rng.normal(), rng.normal());
            x[(0, j)] = centres[k].0 + scales[k].0 * a;
            // A correlated component, so full and diagonal covariances differ.
            x[(1, j)] = centres[k].1 + scales[k].1 * (0.6 * a + 0.8 * b);
        }
        x
    }

    fn gap_at_convergence(model: &mut Mixture, x: &Mat<f64>) -> (f64, EntropySum) {
        let (ll, steps) = crate::train::em::fit(model, x.as_ref(), 1e-14, 5000).unwrap();
        assert!(steps < 5000, "EM did not converge");
        let (resp, ll_after) = model.responsibilities(x.as_ref()).unwrap();
        let elbo = model.elbo(x.as_ref(), resp.as_ref()).unwrap();
        assert!(
            (elbo - ll_after).abs() < 1e-10 * ll_after.abs(),
            "{elbo} vs {ll_after}"
        );
        (ll, model.entropy_sum(resp.as_ref(), elbo))
    }

    #[test]
    fn gaussian_mixtures_at_an_em_fixed_point_satisfy_the_identity() {
        let x = clusters(1500, 1);
        for family in [Family::DiagonalGaussian, Family::FullGaussian] {
            let mut model = Mixture::init(x.as_ref(), 3, family, 4).unwrap();
            // Before EM the identity does not hold.
            let (resp, _) = model.responsibilities(x.as_ref()).unwrap();
            let elbo = model.elbo(x.as_ref(), resp.as_ref()).unwrap();
            assert!(model.entropy_sum(resp.as_ref(), elbo).relative_gap() > 1e-3);
            let (_, sum) = gap_at_convergence(&mut model, &x);
            assert!(sum.relative_gap() < 1e-8, "{family:?}: {sum:?}");
        }
    }

    /// A coordinate that is constant within a component has no stationary variance: the M-step
    /// holds it at the floor, the model counts it, and the identity's gap stays open (so the
    /// decomposition must say that it does not apply).
    #[test]
    fn a_component_without_spread_is_floored_and_counted() {
        let mut x = clusters(1500, 1);
        let regular = {
            let mut model = Mixture::init(x.as_ref(), 3, Family::DiagonalGaussian, 4).unwrap();
            crate::train::em::fit(&mut model, x.as_ref(), 1e-14, 5000).unwrap();
            model.floored
        };
        assert_eq!(regular, 0);
        // The first cluster (every third point) loses its spread along coordinate 1.
        for j in (0..x.ncols()).step_by(3) {
            x[(1, j)] = 0.0;
        }
        for family in [Family::DiagonalGaussian, Family::FullGaussian] {
            let mut model = Mixture::init(x.as_ref(), 3, family, 4).unwrap();
            crate::train::em::fit(&mut model, x.as_ref(), 1e-14, 5000).unwrap();
            assert!(model.floored >= 1, "{family:?}: nothing floored");
            let (resp, _) = model.responsibilities(x.as_ref()).unwrap();
            let elbo = model.elbo(x.as_ref(), resp.as_ref()).unwrap();
            let sum = model.entropy_sum(resp.as_ref(), elbo);
            assert!(sum.relative_gap() > 1e-3, "{family:?}: {sum:?}");
        }
    }

    #[test]
    fn bernoulli_mixtures_at_an_em_fixed_point_satisfy_the_identity() {
        let mut rng = Stream::new(2, &[]);
        let prototypes = [
            [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0],
            [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 1],
            [1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0],
        ];
        let x = Mat::from_fn(12, 2000, |r, j| {
            let bit = prototypes[j % 3][r] as f64;
            if rng.uniform_f64() < 0.15 {
                1.0 - bit
            } else {
                bit
            }
        });
        let mut model = Mixture::init(x.as_ref(), 3, Family::Bernoulli, 7).unwrap();
        let (_, sum) = gap_at_convergence(&mut model, &x);
        assert!(sum.relative_gap() < 1e-8, "{sum:?}");
        assert!(Mixture::init((&x * faer::Scale(0.5)).as_ref(), 3, Family::Bernoulli, 0).is_err());
    }

    #[test]
    fn em_never_lowers_the_likelihood_and_bad_input_is_refused() {
        let x = clusters(600, 3);
        let mut model = Mixture::init(x.as_ref(), 3, Family::FullGaussian, 1).unwrap();
        let mut previous = f64::NEG_INFINITY;
        for _ in 0..50 {
            let ll = model.em_step(x.as_ref()).unwrap();
            assert!(ll >= previous - 1e-12);
            previous = ll;
        }
        assert!(Mixture::init(x.as_ref(), 0, Family::DiagonalGaussian, 0).is_err());
        let mut bad = x.clone();
        bad[(1, 5)] = f64::INFINITY;
        assert!(Mixture::init(bad.as_ref(), 2, Family::DiagonalGaussian, 0).is_err());
        assert!(model.responsibilities(x.subrows(0, 1)).is_err());
    }

    #[test]
    fn per_point_log_likelihoods_average_to_the_log_likelihood_and_samples_follow_the_mixture() {
        let x = clusters(900, 5);
        for family in [Family::DiagonalGaussian, Family::FullGaussian] {
            let mut model = Mixture::init(x.as_ref(), 3, family, 1).unwrap();
            crate::train::em::fit(&mut model, x.as_ref(), 1e-12, 2000).unwrap();
            let each = model.log_likelihoods(x.as_ref()).unwrap();
            let (_, ll) = model.responsibilities(x.as_ref()).unwrap();
            let mean = each.iter().sum::<f64>() / each.len() as f64;
            assert!(
                (mean - ll).abs() < 1e-12 * ll.abs(),
                "{family:?}: {mean} vs {ll}"
            );

            let n = 30_000;
            let (draws, labels) = model.sample(n, 3).unwrap();
            for k in 0..3 {
                let members: Vec<usize> = (0..n).filter(|&j| labels[j] == k).collect();
                let share = members.len() as f64 / n as f64;
                let w = model.weights[k];
                assert!(
                    (share - w).abs() < 5.0 * (w * (1.0 - w) / n as f64).sqrt(),
                    "{family:?}: component {k} drawn {share}, weight {w}"
                );
                let m = members.len() as f64;
                let mean = |r: usize| members.iter().map(|&j| draws[(r, j)]).sum::<f64>() / m;
                let (mu, cov) = match &model.components {
                    Components::DiagonalGaussian { means, variances } => (
                        means.col(k).to_owned(),
                        Mat::from_fn(2, 2, |i, j| if i == j { variances[(i, k)] } else { 0.0 }),
                    ),
                    Components::FullGaussian { means, covariances } => {
                        (means.col(k).to_owned(), covariances[k].clone())
                    }
                    Components::Bernoulli { .. } => unreachable!(),
                };
                for r in 0..2 {
                    assert!(
                        (mean(r) - mu[r]).abs() < 5.0 * (cov[(r, r)] / m).sqrt(),
                        "{family:?}: component {k} mean {r}"
                    );
                }
                // The covariance between the two coordinates (zero for diagonal components).
                let c01 = members
                    .iter()
                    .map(|&j| (draws[(0, j)] - mean(0)) * (draws[(1, j)] - mean(1)))
                    .sum::<f64>()
                    / m;
                let se = (cov[(0, 0)] * cov[(1, 1)] / m).sqrt();
                assert!(
                    (c01 - cov[(0, 1)]).abs() < 5.0 * se,
                    "{family:?}: component {k} covariance {c01} vs {}",
                    cov[(0, 1)]
                );
            }
        }
        // Bernoulli draws are bits with the components' frequencies.
        let model = Mixture {
            weights: vec![0.3, 0.7],
            components: Components::Bernoulli {
                probs: Mat::from_fn(3, 2, |r, k| [[0.1, 0.9], [0.5, 0.2], [0.95, 0.05]][r][k]),
            },
            floored: 0,
        };
        let n = 20_000;
        let (draws, labels) = model.sample(n, 4).unwrap();
        assert!(
            draws
                .col_iter()
                .all(|c| c.iter().all(|&v| v == 0.0 || v == 1.0))
        );
        for k in 0..2 {
            let members: Vec<usize> = (0..n).filter(|&j| labels[j] == k).collect();
            for r in 0..3 {
                let p = model_prob(&model, r, k);
                let f = members.iter().map(|&j| draws[(r, j)]).sum::<f64>() / members.len() as f64;
                assert!((f - p).abs() < 5.0 * (p * (1.0 - p) / members.len() as f64).sqrt());
            }
        }
    }

    fn model_prob(model: &Mixture, r: usize, k: usize) -> f64 {
        match &model.components {
            Components::Bernoulli { probs } => probs[(r, k)],
            _ => unreachable!(),
        }
    }
}
