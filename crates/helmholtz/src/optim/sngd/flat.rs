//! The flat baselines as a [`Method`]: gradient descent or BFGS ([`super::baselines`]) in a
//! distribution's unconstrained coordinates (for a negative binomial (ln r, logit s)), each step
//! along the direction with a [`LineSearch`]. A distribution offers such coordinates by
//! implementing [`Unconstrained`].

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::objectives::targets::Target;
use crate::optim::sngd::baselines::{Bfgs, gd_step};
use crate::optim::sngd::{LineSearch, Method, MethodState, Step, finite_objective};

/// A distribution with unconstrained coordinates u ∈ ℝⁿ and the chain rule into them.
pub trait Unconstrained: Sized {
    /// The gradient type of its targets (in its standard coordinates).
    type Gradient;
    /// The coordinates u of this distribution.
    fn unconstrained(&self) -> Vec<f64>;
    /// The distribution at `u`.
    fn from_unconstrained(u: &[f64]) -> Result<Self>;
    /// The gradient `g` in the standard coordinates carried to u.
    fn gradient_in_unconstrained(&self, g: &Self::Gradient) -> Vec<f64>;
}

/// Which flat rule a [`Flat`] method steps by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatRule {
    /// Gradient descent: direction ∇f.
    Gd,
    /// BFGS: direction H∇f with the inverse-Hessian estimate H.
    Bfgs,
}

/// Gradient descent or BFGS on a distribution `P` in its unconstrained coordinates.
pub struct Flat<P> {
    u: Vec<f64>,
    bfgs: Option<Bfgs>,
    search: LineSearch,
    point: PhantomData<fn() -> P>,
}

impl<P: Unconstrained> Flat<P> {
    /// Starts at `start` with rule `rule`, step sizes from `search`.
    pub fn new(start: &P, rule: FlatRule, search: LineSearch) -> Result<Self> {
        search.validate()?;
        let u = start.unconstrained();
        let bfgs = (rule == FlatRule::Bfgs).then(|| Bfgs::new(u.len()));
        Ok(Flat {
            u,
            bfgs,
            search,
            point: PhantomData,
        })
    }
}

impl<P: Unconstrained> Method for Flat<P> {
    type Point = P;
    type Gradient = P::Gradient;

    fn distribution(&self) -> Result<P> {
        P::from_unconstrained(&self.u)
    }

    fn step<T>(&mut self, target: &T) -> Result<Step>
    where
        T: Target<Point = P, Gradient = P::Gradient>,
    {
        let objective = |u: &[f64]| -> Result<(f64, Vec<f64>)> {
            let q = P::from_unconstrained(u)?;
            let (value, g) = target.evaluate(&q)?;
            Ok((value, q.gradient_in_unconstrained(&g)))
        };
        let (value, _) = finite_objective(target, &self.distribution()?)?;
        let (next, searched) = match &mut self.bfgs {
            Some(bfgs) => bfgs.step(&self.u, &objective, self.search)?,
            None => gd_step(&self.u, &objective, self.search)?,
        };
        self.u = next;
        Ok(Step {
            value,
            searched: self.search.needs_values().then_some(searched),
        })
    }

    fn state(&self) -> MethodState {
        let mut state = MethodState::default();
        state.put("u", self.u.clone());
        if let Some(bfgs) = &self.bfgs {
            state.put("inverse_hessian", bfgs.inverse_hessian());
        }
        state
    }

    fn restore(&mut self, state: &MethodState) -> Result<()> {
        let n = self.u.len();
        let u = state.get("u", Some(n))?.to_vec();
        let bfgs = match &self.bfgs {
            Some(_) => Some(Bfgs::from_inverse_hessian(
                n,
                state.get("inverse_hessian", Some(n * n))?,
            )?),
            None => None,
        };
        if u.iter().any(|v| !v.is_finite()) {
            return Err(Error::Checkpoint(
                "the method state's \"u\" holds a non-finite value".into(),
            ));
        }
        self.u = u;
        self.bfgs = bfgs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::negative_binomial::Counts;
    use crate::math::rng::Stream;
    use crate::math::special::negative_binomial_draw;
    use crate::objectives::targets::negative_binomial::{
        NbMixtureNll, NbMixtureParams, NegativeBinomial, NegativeBinomialNll,
        nb_mixture_nll_unconstrained,
    };

    fn counts() -> Counts {
        let mut rng = Stream::new(4, &[]);
        let data: Vec<u64> = (0..400)
            .map(|i| negative_binomial_draw([3.0, 8.0][i % 2], [0.2, 0.05][i % 2], &mut rng))
            .collect();
        Counts::new(&data).unwrap()
    }

    /// The flat BFGS method takes the steps of the baseline it wraps: the same points as
    /// `Bfgs::step` on the unconstrained objective, and its state restores the estimate H.
    #[test]
    fn flat_bfgs_follows_the_baseline_and_restores_its_estimate() {
        let counts = counts();
        let init = NbMixtureParams {
            weights: vec![0.5, 0.5],
            r: vec![1.0, 4.0],
            s: vec![0.3, 0.1],
        };
        let search = LineSearch::Grid { points: 200 };
        let target = NbMixtureNll { counts: &counts };
        let mut flat = Flat::new(&init, FlatRule::Bfgs, search).unwrap();
        let mut bfgs = Bfgs::new(6);
        let mut u = init.unconstrained();
        let objective = |u: &[f64]| nb_mixture_nll_unconstrained(&counts, u);
        for _ in 0..3 {
            let step = flat.step(&target).unwrap();
            let (next, value) = bfgs.step(&u, &objective, search).unwrap();
            u = next;
            assert_eq!(flat.state().get("u", None).unwrap(), u.as_slice());
            assert_eq!(step.searched, Some(value));
        }
        let saved = flat.state();
        let mut other = Flat::new(&init, FlatRule::Bfgs, search).unwrap();
        other.restore(&saved).unwrap();
        flat.step(&target).unwrap();
        other.step(&target).unwrap();
        assert_eq!(flat.state(), other.state());
        // One NB by gradient descent lowers the NLL.
        let single = NegativeBinomialNll { counts: &counts };
        let start = NegativeBinomial { r: 1.0, s: 0.5 };
        let mut gd = Flat::new(&start, FlatRule::Gd, search).unwrap();
        let first = gd.step(&single).unwrap();
        assert!(first.searched.unwrap() < first.value);
        assert!(!gd.state().values.contains_key("inverse_hessian"));
    }
}
