//! Adam on the Gaussian parts of a distribution with a square root of each covariance: Σ = WᵀW
//! ([`Root::Covariance`]) or Σ⁻¹ = WᵀW ([`Root::Precision`]), the weights of a mixture as
//! softmax logits, and the auxiliary λ beside them (the authors' Adam baselines).

use std::marker::PhantomData;

use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;

use crate::dist::surrogate::{GaussianMixture, Gaussians, Surrogated};
use crate::error::{Error, Result};
use crate::math::linalg::cholesky;
use crate::objectives::targets::Target;
use crate::optim::sngd::{Method, MethodState, Step, finite_objective};
use crate::optim::{Adam, Update};

/// Which matrix W is a square root of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// Σ = WᵀW.
    Covariance,
    /// Σ⁻¹ = WᵀW.
    Precision,
}

/// Adam on (softmax logits, m_k, W_k, λ) of a distribution `P` whose Gaussian parts are a
/// [`GaussianMixture`]. The parameters are one flat vector: the K logits, then per component m_k
/// and W_k (column-major), then λ.
pub struct AdamRoot<P> {
    surrogate: GaussianMixture,
    root: Root,
    params: Vec<f64>,
    lambda_len: usize,
    adam: Adam<Vec<f64>>,
    distribution: PhantomData<fn() -> P>,
}

impl<P: Surrogated<Surrogate = GaussianMixture>> AdamRoot<P> {
    /// Starts at the given logits, means, roots W_k and λ, with Adam's learning rate `lr`.
    pub fn new(
        surrogate: GaussianMixture,
        root: Root,
        logits: Vec<f64>,
        means: &[Vec<f64>],
        roots: &[Mat<f64>],
        lambda: &[f64],
        lr: f64,
    ) -> Result<Self> {
        let (big_k, d) = (surrogate.components, surrogate.dim);
        if logits.len() != big_k
            || means.len() != big_k
            || roots.len() != big_k
            || means.iter().any(|m| m.len() != d)
            || roots.iter().any(|w| w.nrows() != d || w.ncols() != d)
        {
            return Err(Error::Dimension(format!(
                "Adam on {big_k} Gaussians of dimension {d} given {} logits, {} means and {} roots",
                logits.len(),
                means.len(),
                roots.len()
            )));
        }
        let mut params = logits;
        for k in 0..big_k {
            params.extend(&means[k]);
            for c in 0..d {
                params.extend((0..d).map(|r| roots[k][(r, c)]));
            }
        }
        params.extend(lambda);
        Ok(AdamRoot {
            surrogate,
            root,
            adam: Adam::literal(lr, &params)?,
            params,
            lambda_len: lambda.len(),
            distribution: PhantomData,
        })
    }

    /// W = Lᵀ with LLᵀ = Σ (covariance root) or Σ⁻¹ (precision root): a root of `sigma`.
    pub fn root_of(sigma: &Mat<f64>, root: Root) -> Result<Mat<f64>> {
        let target = match root {
            Root::Covariance => sigma.clone(),
            Root::Precision => cholesky(sigma, "Σ")?.inverse(),
        };
        let llt = cholesky(&target, "Σ")?;
        let l = llt.L();
        Ok(Mat::from_fn(l.nrows(), l.ncols(), |r, c| l[(c, r)]))
    }

    /// The Gaussian parts and the roots W_k of the current parameters.
    fn gaussians(&self) -> Result<(Gaussians, Vec<Mat<f64>>)> {
        let (big_k, d) = (self.surrogate.components, self.surrogate.dim);
        let logits = &self.params[..big_k];
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logits.iter().map(|v| (v - top).exp()).sum();
        let weights = logits.iter().map(|v| (v - top).exp() / total).collect();
        let mut means = Vec::with_capacity(big_k);
        let mut covariances = Vec::with_capacity(big_k);
        let mut roots = Vec::with_capacity(big_k);
        for k in 0..big_k {
            let start = big_k + k * (d + d * d);
            means.push(self.params[start..start + d].to_vec());
            let w = Mat::from_fn(d, d, |r, c| self.params[start + d + c * d + r]);
            let wtw = w.transpose() * &w;
            covariances.push(match self.root {
                Root::Covariance => wtw,
                Root::Precision => cholesky(&wtw, "WᵀW")?.inverse(),
            });
            roots.push(w);
        }
        Ok((
            Gaussians {
                weights,
                means,
                covariances,
            },
            roots,
        ))
    }

    fn lambda(&self) -> &[f64] {
        &self.params[self.params.len() - self.lambda_len..]
    }
}

impl<P: Surrogated<Surrogate = GaussianMixture>> Method for AdamRoot<P> {
    type Point = P;
    type Gradient = P::Gradient;

    fn distribution(&self) -> Result<P> {
        let (gaussians, _) = self.gaussians()?;
        P::from_surrogate(&self.surrogate, &gaussians, self.lambda())
    }

    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = P, Gradient = P::Gradient>,
    {
        let (value, gradient) = self.objective_and_gradient(target)?;
        self.adam.checked_update(&mut self.params, &gradient)?;
        Ok(Step {
            value,
            searched: None,
        })
    }

    fn state(&self) -> MethodState {
        let mut state = MethodState::default();
        state.put("params", self.params.clone());
        state.put_adam("adam", &self.adam);
        state
    }

    fn restore(&mut self, state: &MethodState) -> Result<()> {
        let n = self.params.len();
        let params = state.get("params", Some(n))?.to_vec();
        self.adam.restore(state.adam("adam", n)?)?;
        self.params = params;
        Ok(())
    }
}

impl<P: Surrogated<Surrogate = GaussianMixture>> AdamRoot<P> {
    /// The target's value and its gradient in the flat parameters.
    fn objective_and_gradient<T>(&self, target: &T) -> Result<(f64, Vec<f64>)>
    where
        T: Target<Point = P, Gradient = P::Gradient>,
    {
        let (gaussians, roots) = self.gaussians()?;
        let q = P::from_surrogate(&self.surrogate, &gaussians, self.lambda())?;
        let (value, g) = finite_objective(target, &q)?;
        let (g_s, g_lambda) = q.pull_back(&self.surrogate, &gaussians, self.lambda(), &g)?;
        let (big_k, d) = (self.surrogate.components, self.surrogate.dim);
        // p = softmax(w): ∂f/∂w_k = p_k (g_k − Σ_j p_j g_j).
        let p = &gaussians.weights;
        let mean: f64 = p.iter().zip(&g_s.weights).map(|(a, b)| a * b).sum();
        let mut gradient: Vec<f64> = (0..big_k).map(|k| p[k] * (g_s.weights[k] - mean)).collect();
        for (k, root) in roots.iter().enumerate() {
            gradient.extend(&g_s.means[k]);
            // Σ = WᵀW: ∂W = 2W g_Σ; Σ⁻¹ = WᵀW: ∂W = 2W g_S with g_S = −Σ g_Σ Σ.
            let sigma = &gaussians.covariances[k];
            let inner = match self.root {
                Root::Covariance => g_s.covariances[k].clone(),
                Root::Precision => -(sigma * &g_s.covariances[k] * sigma),
            };
            let g_w = root * &inner * faer::Scale(2.0);
            for c in 0..d {
                gradient.extend((0..d).map(|r| g_w[(r, c)]));
            }
        }
        gradient.extend(g_lambda);
        Ok((value, gradient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::skew_mixture::SkewMixture;
    use crate::math::rng::Stream;
    use crate::models::logistic_regression::LogisticRegression;
    use crate::objectives::targets::logistic_vi::{Noise, SkewMixtureElbo};

    /// The gradient in (logits, m_k, W_k, λ) against central differences of the target with its
    /// noise fixed, for both roots, on a two-component skew-normal mixture.
    #[test]
    fn the_flat_gradient_matches_finite_differences() {
        let mut rng = Stream::new(3, &[]);
        let x = Mat::from_fn(15, 2, |_, _| rng.normal());
        let y = (0..15)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let model = LogisticRegression::new(x, y).unwrap();
        let target = SkewMixtureElbo {
            model: &model,
            draws: 3,
            noise: Noise {
                seed: 5,
                ids: vec![],
            },
        };
        let surrogate = GaussianMixture {
            components: 2,
            dim: 2,
            min_weight: 0.0,
        };
        for root in [Root::Covariance, Root::Precision] {
            let roots = [
                Mat::from_fn(2, 2, |r, c| {
                    if r == c {
                        0.8
                    } else if r < c {
                        0.1
                    } else {
                        0.0
                    }
                }),
                Mat::from_fn(2, 2, |r, c| {
                    if r == c {
                        1.2
                    } else if r < c {
                        -0.2
                    } else {
                        0.0
                    }
                }),
            ];
            let mut adam = AdamRoot::<SkewMixture>::new(
                surrogate,
                root,
                vec![0.3, -0.1],
                &[vec![0.2, -0.4], vec![-0.3, 0.1]],
                &roots,
                &[1.0, -0.5, -0.6, 0.9],
                0.01,
            )
            .unwrap();
            let (_, g) = adam.objective_and_gradient(&target).unwrap();
            let h = 1e-6;
            for (k, &analytic) in g.iter().enumerate() {
                let keep = adam.params[k];
                adam.params[k] = keep + h;
                let up = target.value(&adam.distribution().unwrap()).unwrap();
                adam.params[k] = keep - h;
                let down = target.value(&adam.distribution().unwrap()).unwrap();
                adam.params[k] = keep;
                let numeric = (up - down) / (2.0 * h);
                assert!(
                    (numeric - analytic).abs() < 1e-5 * (1.0 + analytic.abs()),
                    "{root:?} parameter {k}: {numeric} vs {analytic}"
                );
            }
        }
    }
}
