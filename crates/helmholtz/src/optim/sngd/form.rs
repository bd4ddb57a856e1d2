//! The SNGD update, written once for both forms (natgrad.md b.3): a state in one of the
//! surrogate's dual coordinate systems, a step θ ← θ − β ∇f along the gradient in the other,
//! the step size from a [`LineSearch`] that keeps the iterate in the domain, and the auxiliary
//! λ by Adam or by a quasi-Newton step λ ← λ − β H ∇_λ f (H BFGS's inverse-Hessian estimate)
//! taken with the surrogate's in the one line search. A [`Form`] says which coordinates the state moves in: [`super::MeanForm`] (MLE)
//! or [`super::NaturalForm`] (VI).

use std::marker::PhantomData;

use crate::dist::surrogate::{Surrogate, Surrogated};
use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::sngd::baselines::Bfgs;
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
    lambda_step: LambdaStep,
    search: LineSearch,
    form: PhantomData<F>,
}

/// How SNGD moves the auxiliary λ.
enum LambdaStep {
    /// λ is empty.
    None,
    /// Adam on ∇_λ f after the surrogate's step.
    Adam(Adam<Vec<f64>>),
    /// −H ∇_λ f with H BFGS's inverse-Hessian estimate from λ's steps and gradient changes,
    /// scaled by the surrogate's β, in the same line search; the last λ and gradient, and the
    /// scale h0 of the first estimate h0·I, to which H restarts when no step size decreases f.
    QuasiNewton(Bfgs, Option<(Vec<f64>, Vec<f64>)>, f64),
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
        let lambda_step = if lambda.is_empty() {
            LambdaStep::None
        } else {
            LambdaStep::Adam(Adam::literal(lr_lambda, &lambda)?)
        };
        Ok(Sngd {
            surrogate,
            point,
            lambda,
            lambda_step,
            search,
            form: PhantomData,
        })
    }

    /// λ moves by a quasi-Newton step −H ∇_λ f (BFGS, H starting at `h0`·I) scaled by the
    /// same β as the surrogate in one line search, instead of by Adam. The search must be
    /// [`LineSearch::Decrease`]: a joint step the objective does not check can climb.
    pub fn quasi_newton_lambda(mut self, h0: f64) -> Result<Self> {
        crate::optim::check_step_size("the first inverse-Hessian scale of λ", h0)?;
        if !matches!(self.search, LineSearch::Decrease { .. }) {
            return Err(Error::Config(
                "SNGD's quasi-Newton λ step needs the decrease line search".into(),
            ));
        }
        if !self.lambda.is_empty() {
            let bfgs = scaled_identity(self.lambda.len(), h0)?;
            self.lambda_step = LambdaStep::QuasiNewton(bfgs, None, h0);
        }
        Ok(self)
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
        // λ's natural direction I_λλ⁻¹ ∇_λ f, moved with β; none when Adam steps λ.
        let lambda_direction = match &mut self.lambda_step {
            LambdaStep::QuasiNewton(bfgs, last, _) => {
                if let Some((lambda, g)) = last.take() {
                    let s: Vec<f64> = self
                        .lambda
                        .iter()
                        .zip(&lambda)
                        .map(|(a, b)| a - b)
                        .collect();
                    let y: Vec<f64> = g_lambda.iter().zip(&g).map(|(a, b)| a - b).collect();
                    bfgs.update(&s, &y);
                }
                *last = Some((self.lambda.clone(), g_lambda.clone()));
                Some(bfgs.direction(&g_lambda))
            }
            _ => None,
        };
        let (surrogate, lambda, search) = (&self.surrogate, &self.lambda, self.search);
        let decrease = matches!(search, LineSearch::Decrease { .. });
        let found = search_step(search, |beta| {
            let candidate: Vec<f64> = theta
                .iter()
                .zip(&direction)
                .map(|(a, d)| a - beta * d)
                .collect();
            let point = F::point(surrogate, &candidate)?;
            let lambda = match &lambda_direction {
                Some(dl) => lambda.iter().zip(dl).map(|(a, d)| a - beta * d).collect(),
                None => lambda.clone(),
            };
            // A quasi-Newton λ moves only under the decrease search, which evaluates here.
            let value = if search.needs_values() {
                let q = P::from_surrogate(surrogate, &point, &lambda).ok()?;
                target.value(&q).ok()?
            } else {
                0.0
            };
            if decrease && value > value_at_start {
                return None;
            }
            Some(((point, lambda), value))
        });
        let searched = match found {
            Some(((next, next_lambda), searched)) => {
                self.point = next;
                self.lambda = next_lambda;
                searched
            }
            // No step size decreases the objective: the surrogate stays for this step, and a
            // quasi-Newton λ restarts from h0·I (its estimate no longer gives a descent).
            None if decrease => {
                if let LambdaStep::QuasiNewton(bfgs, last, h0) = &mut self.lambda_step {
                    *bfgs = scaled_identity(self.lambda.len(), *h0)?;
                    *last = None;
                }
                value
            }
            None => {
                return Err(Error::Diverged(format!(
                    "SNGD: no step size {}",
                    surrogate.domain()
                )));
            }
        };
        if let LambdaStep::Adam(adam) = &mut self.lambda_step {
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
        match &self.lambda_step {
            LambdaStep::Adam(adam) => state.put_adam("adam", adam),
            LambdaStep::QuasiNewton(bfgs, last, _) => {
                state.put("bfgs.inverse_hessian", bfgs.inverse_hessian());
                let (lambda, g) = last.clone().unwrap_or_default();
                state.put("bfgs.last_lambda", lambda);
                state.put("bfgs.last_gradient", g);
            }
            LambdaStep::None => {}
        }
        state
    }

    fn restore(&mut self, state: &MethodState) -> Result<()> {
        let point = self
            .surrogate
            .point_from_values(state.get("point", None)?)?;
        let lambda = state.get("lambda", Some(self.lambda.len()))?.to_vec();
        let n = lambda.len();
        match &mut self.lambda_step {
            LambdaStep::Adam(adam) => adam.restore(state.adam("adam", n)?)?,
            LambdaStep::QuasiNewton(bfgs, last, _) => {
                let h = state.get("bfgs.inverse_hessian", Some(n * n))?;
                let last_lambda = state.get("bfgs.last_lambda", None)?;
                let last_gradient = state.get("bfgs.last_gradient", None)?;
                let stored = match (last_lambda.len(), last_gradient.len()) {
                    (0, 0) => None,
                    (a, b) if a == n && b == n => {
                        Some((last_lambda.to_vec(), last_gradient.to_vec()))
                    }
                    _ => {
                        return Err(Error::Checkpoint(format!(
                            "the method state's last λ and gradient hold {} and {} values, {n} (or none) expected",
                            last_lambda.len(),
                            last_gradient.len()
                        )));
                    }
                };
                *bfgs = Bfgs::from_inverse_hessian(n, h)?;
                *last = stored;
            }
            LambdaStep::None => {}
        }
        self.point = point;
        self.lambda = lambda;
        Ok(())
    }
}

/// BFGS with the first estimate h0·I of n parameters.
fn scaled_identity(n: usize, h0: f64) -> Result<Bfgs> {
    let values: Vec<f64> = (0..n * n)
        .map(|k| if k % (n + 1) == 0 { h0 } else { 0.0 })
        .collect();
    Bfgs::from_inverse_hessian(n, &values)
}
