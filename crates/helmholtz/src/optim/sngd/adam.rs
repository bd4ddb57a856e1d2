//! Adam in f64 on a flat parameter vector: SNGD's auxiliary parameters λ and the Adam baselines.

use crate::error::{Error, Result};

/// Adam in f64 on a flat parameter vector, for the auxiliary parameters λ of SNGD and the Adam
/// baselines (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, as the authors' JAX optimiser).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    first: Vec<f64>,
    second: Vec<f64>,
    step: i32,
}

impl Adam {
    /// A fresh optimiser for `n` parameters.
    pub fn new(n: usize, lr: f64) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "Adam learning rate must be positive, got {lr}"
            )));
        }
        Ok(Adam {
            lr,
            first: vec![0.0; n],
            second: vec![0.0; n],
            step: 0,
        })
    }

    /// One descent step x ← x − lr m̂/(√v̂ + ε); a non-finite gradient is refused before x is
    /// touched.
    pub fn descend(&mut self, x: &mut [f64], gradient: &[f64]) -> Result<()> {
        if x.len() != self.first.len() || gradient.len() != x.len() {
            return Err(Error::Dimension(format!(
                "Adam for {} parameters given {} and a gradient of {}",
                self.first.len(),
                x.len(),
                gradient.len()
            )));
        }
        if let Some(k) = gradient.iter().position(|g| !g.is_finite()) {
            return Err(Error::Diverged(format!(
                "Adam: non-finite gradient entry {k}"
            )));
        }
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.step += 1;
        let (c1, c2) = (1.0 - B1.powi(self.step), 1.0 - B2.powi(self.step));
        for (k, g) in gradient.iter().enumerate() {
            self.first[k] = B1 * self.first[k] + (1.0 - B1) * g;
            self.second[k] = B2 * self.second[k] + (1.0 - B2) * g * g;
            x[k] -= self.lr * (self.first[k] / c1) / ((self.second[k] / c2).sqrt() + 1e-8);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_minimises_a_badly_scaled_quadratic_and_refuses_bad_gradients() {
        let mut adam = Adam::new(2, 0.05).unwrap();
        let mut x = vec![3.0, -2.0];
        for _ in 0..2000 {
            let g = [200.0 * (x[0] - 1.0), 0.02 * (x[1] + 1.0)];
            adam.descend(&mut x, &g).unwrap();
        }
        assert!(
            (x[0] - 1.0).abs() < 1e-2 && (x[1] + 1.0).abs() < 1e-1,
            "{x:?}"
        );
        assert!(adam.descend(&mut x, &[f64::NAN, 0.0]).is_err());
        assert!(adam.descend(&mut x, &[0.0]).is_err());
        assert!(Adam::new(2, 0.0).is_err());
    }
}
