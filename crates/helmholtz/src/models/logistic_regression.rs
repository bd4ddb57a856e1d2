//! Bayesian logistic regression: the likelihood p(y | x, z) = Π σ(y_i x_iᵀz) with labels
//! y ∈ {−1, 1} and the Gaussian prior z ~ N(0, s² I) on the weights (s = 1 unless set with
//! [`LogisticRegression::with_prior_scale`]). The variational targets on it are in
//! [`crate::objectives::targets::logistic_vi`].

use faer::Mat;

use crate::error::{Error, Result};

/// Features and ±1 labels of a logistic-regression data set, and the prior's scale.
pub struct LogisticRegression {
    /// Features, one row per point.
    pub x: Mat<f64>,
    /// Labels in {−1, 1}.
    pub y: Vec<f64>,
    /// The prior's standard deviation s: z ~ N(0, s² I).
    prior_scale: f64,
}

/// ln σ(t), stable for large |t|.
pub fn ln_sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        -(-t).exp().ln_1p()
    } else {
        t - t.exp().ln_1p()
    }
}

impl LogisticRegression {
    /// Checks one label per row, every label ±1 and finite features; the prior is N(0, I).
    pub fn new(x: Mat<f64>, y: Vec<f64>) -> Result<Self> {
        if x.nrows() != y.len() || x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::Dimension(format!(
                "{} × {} features for {} labels",
                x.nrows(),
                x.ncols(),
                y.len()
            )));
        }
        if y.iter().any(|&v| v != 1.0 && v != -1.0) {
            return Err(Error::InvalidData("labels must be −1 or 1".into()));
        }
        for c in 0..x.ncols() {
            for r in 0..x.nrows() {
                if !x[(r, c)].is_finite() {
                    return Err(Error::InvalidData(format!(
                        "feature ({r}, {c}) is not finite"
                    )));
                }
            }
        }
        Ok(LogisticRegression {
            x,
            y,
            prior_scale: 1.0,
        })
    }

    /// The same data with the prior N(0, s² I); s must be a positive finite number.
    pub fn with_prior_scale(mut self, s: f64) -> Result<Self> {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::Config(format!(
                "the prior scale must be a positive number, got {s}"
            )));
        }
        self.prior_scale = s;
        Ok(self)
    }

    /// The prior's standard deviation s.
    pub fn prior_scale(&self) -> f64 {
        self.prior_scale
    }

    /// 1/s², so that −ln N(z; 0, s² I) = ½|z|²/s² + [`prior_normaliser`](Self::prior_normaliser).
    pub fn prior_precision(&self) -> f64 {
        1.0 / (self.prior_scale * self.prior_scale)
    }

    /// (d/2) ln 2π + d ln s.
    pub fn prior_normaliser(&self) -> f64 {
        let d = self.dim() as f64;
        0.5 * d * (2.0 * std::f64::consts::PI).ln() + d * self.prior_scale.ln()
    }

    /// ln N(z; 0, s² I).
    pub fn log_prior(&self, z: &[f64]) -> f64 {
        -(0.5 * z.iter().map(|v| v * v).sum::<f64>() * self.prior_precision()
            + self.prior_normaliser())
    }

    /// Dimension of the weights z.
    pub fn dim(&self) -> usize {
        self.x.ncols()
    }

    /// Σ_i ln σ(y_i x_iᵀz) and its gradient in z.
    pub fn log_likelihood(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let (n, d) = (self.x.nrows(), self.x.ncols());
        let mut value = 0.0;
        let mut gradient = vec![0.0; d];
        for i in 0..n {
            let t = self.y[i] * (0..d).map(|j| self.x[(i, j)] * z[j]).sum::<f64>();
            value += ln_sigmoid(t);
            let weight = self.y[i] * crate::math::sigmoid(-t);
            for (j, g) in gradient.iter_mut().enumerate() {
                *g += weight * self.x[(i, j)];
            }
        }
        (value, gradient)
    }
}
