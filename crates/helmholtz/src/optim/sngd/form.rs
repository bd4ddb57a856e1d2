//! The SNGD update, written once for both forms (natgrad.md b.3): a state in one of the
//! surrogate's dual coordinate systems, a step θ ← θ − β ∇f along the gradient in the other,
//! the step size from a [`LineSearch`] that keeps the iterate in the domain, and the auxiliary
//! λ by Adam. A [`Form`] says which coordinates the state moves in: [`super::MeanForm`] (MLE)
//! or [`super::NaturalForm`] (VI).

use std::marker::PhantomData;

use crate::dist::surrogate::{Surrogate, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::sngd::{LineSearch, Method, MethodState, Step, finite_objective, search_step};
use crate::optim::{Adam, Update};

/// Which dual coordinates of the surrogate the SNGD state moves in.
pub trait Form {
    /// The coordinates θ of `point`.
    fn coordinates<S: Surrogate>(surrogate: &S, point: &S::Point) -> Result<Vec<f64>>;
    /// The step direction at `point` from the gradient `g` in the point's coordinates: the
    /// gradient of f in the dual coordinates.
    fn direction<S: Surrogate>(
        surrogate: &S,
        point: &S::Point,
        g: &S::Gradient,
    ) -> Result<Vec<f64>>;
    /// The member at coordinates `theta`; None outside the domain.
    fn point<S: Surrogate>(surrogate: &S, theta: &[f64]) -> Option<S::Point>;
}

/// SNGD in form `F` for a distribution `P` optimised through its surrogate.
pub struct Sngd<P: Surrogated, F: Form> {
    surrogate: P::Surrogate,
    point: <P::Surrogate as Surrogate>::Point,
    lambda: Vec<f64>,
    adam: Option<Adam<Vec<f64>>>,
    search: LineSearch,
    form: PhantomData<F>,
}

impl<P: Surrogated, F: Form> Sngd<P, F> {
    /// Starts at the surrogate member `point` with auxiliary parameters `lambda` (stepped by
    /// Adam with learning rate `lr_lambda`; unused when λ is empty); β comes from `search`.
    pub fn new(
        surrogate: P::Surrogate,
        point: <P::Surrogate as Surrogate>::Point,
        lambda: Vec<f64>,
        lr_lambda: f64,
        search: LineSearch,
    ) -> Result<Self> {
        search.validate()?;
        let adam = if lambda.is_empty() {
            None
        } else {
            Some(Adam::literal(lr_lambda, &lambda)?)
        };
        Ok(Sngd {
            surrogate,
            point,
            lambda,
            adam,
            search,
            form: PhantomData,
        })
    }

    /// The current surrogate member.
    pub fn point(&self) -> &<P::Surrogate as Surrogate>::Point {
        &self.point
    }
}

impl<P: Surrogated, F: Form> Method for Sngd<P, F> {
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
        let value_at_start = value;
        let (g_surrogate, g_lambda) =
            q.pull_back(&self.surrogate, &self.point, &self.lambda, &g)?;
        let theta = F::coordinates(&self.surrogate, &self.point)?;
        // θ ← θ − β ∇f in the dual coordinates.
        let direction = F::direction(&self.surrogate, &self.point, &g_surrogate)?;
        let (surrogate, lambda, search) = (&self.surrogate, &self.lambda, self.search);
        let decrease = matches!(search, LineSearch::Decrease { .. });
        let found = search_step(search, |beta| {
            let candidate: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .map(|(a, d)| a - beta * d)
                .collect();
            let point = F::point(surrogate, &candidate)?;
            let value = if search.needs_values() {
                let q = P::from_surrogate(surrogate, &point, lambda).ok()?;
                target.value(&q).ok()?
            } else {
                0.0
            };
            if decrease && value > value_at_start {
                return None;
            }
            Some((point, value))
        });
        let searched = match found {
            Some((next, searched)) => {
                self.point = next;
                searched
            }
            // No step size decreases the objective: the surrogate stays for this step.
            None if decrease => value,
            None => {
                return Err(Error::Diverged(format!(
                    "SNGD: no step size {}",
                    surrogate.domain()
                )));
            }
        };
        if let Some(adam) = &mut self.adam {
            adam.checked_update(&mut self.lambda, &g_lambda)?;
        }
        Ok(Step {
            value,
            searched: search.needs_values().then_some(searched),
        })
    }

    fn state(&self) -> MethodState {
        let mut state = MethodState::default();
        state.put("point", self.surrogate.point_values(&self.point));
        state.put("lambda", self.lambda.clone());
        if let Some(adam) = &self.adam {
            state.put_adam("adam", adam);
        }
        state
    }

    fn restore(&mut self, state: &MethodState) -> Result<()> {
        let point = self
            .surrogate
            .point_from_values(state.get("point", None)?)?;
        let lambda = state.get("lambda", Some(self.lambda.len()))?.to_vec();
        if let Some(adam) = &mut self.adam {
            adam.restore(state.adam("adam", lambda.len())?)?;
        }
        self.point = point;
        self.lambda = lambda;
        Ok(())
    }
}
