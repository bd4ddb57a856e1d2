//! SNGD in the natural-parameter (VI) form (natgrad.md b.3): the state is the surrogate's natural
//! parameters η̃, the step η̃ ← η̃ − β ∇_μ̃ f, the auxiliary λ by Adam.

use crate::dist::surrogate::{Surrogate, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::sngd::{Adam, LineSearch, Method, Step, finite_objective, search_step};

/// SNGD, natural-parameter form, for a distribution `P` optimised through its surrogate.
pub struct SngdNatural<P: Surrogated> {
    surrogate: P::Surrogate,
    point: <P::Surrogate as Surrogate>::Point,
    lambda: Vec<f64>,
    adam: Option<Adam>,
    search: LineSearch,
}

impl<P: Surrogated> SngdNatural<P> {
    /// Starts at the surrogate member `point` with auxiliary parameters `lambda` (stepped by
    /// Adam with learning rate `lr_lambda`; unused when λ is empty); β comes from `search`.
    pub fn new(
        surrogate: P::Surrogate,
        point: <P::Surrogate as Surrogate>::Point,
        lambda: Vec<f64>,
        lr_lambda: f64,
        search: LineSearch,
    ) -> Result<Self> {
        let adam = if lambda.is_empty() {
            None
        } else {
            Some(Adam::new(lambda.len(), lr_lambda)?)
        };
        Ok(SngdNatural {
            surrogate,
            point,
            lambda,
            adam,
            search,
        })
    }

    /// The current surrogate member.
    pub fn point(&self) -> &<P::Surrogate as Surrogate>::Point {
        &self.point
    }
}

impl<P: Surrogated> Method for SngdNatural<P> {
    type Point = P;
    type Gradient = P::Gradient;

    fn distribution(&self) -> Result<P> {
        P::from_surrogate(&self.surrogate, &self.point, &self.lambda)
    }

    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = P, Gradient = P::Gradient>,
    {
        let q = self.distribution()?;
        let (value, g) = finite_objective(target, &q)?;
        let (g_surrogate, g_lambda) =
            q.pull_back(&self.surrogate, &self.point, &self.lambda, &g)?;
        let eta = self.surrogate.natural(&self.point)?;
        // η̃ ← η̃ − β ∇_μ̃ f.
        let direction = self.surrogate.gradient_in_mean(&self.point, &g_surrogate)?;
        let (surrogate, lambda, search) = (&self.surrogate, &self.lambda, self.search);
        let (next, searched) = search_step(search, |beta| {
            let candidate: Vec<f64> = eta
                .iter()
                .zip(&direction)
                .map(|(a, d)| a - beta * d)
                .collect();
            let point = surrogate.from_natural(&candidate)?;
            let value = if search.needs_values() {
                let q = P::from_surrogate(surrogate, &point, lambda).ok()?;
                target.value(&q).ok()?
            } else {
                0.0
            };
            Some((point, value))
        })
        .ok_or_else(|| Error::Diverged(format!("SNGD: no step size {}", surrogate.domain())))?;
        self.point = next;
        if let Some(adam) = &mut self.adam {
            adam.descend(&mut self.lambda, &g_lambda)?;
        }
        Ok(Step {
            value,
            searched: search.needs_values().then_some(searched),
        })
    }
}
