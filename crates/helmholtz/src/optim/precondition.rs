//! Natural gradient as a preconditioner (DESIGN.md): an algorithm produces ordinary gradients, a
//! [`Preconditioner`] turns them into natural gradients, an optimizer applies them. The
//! preconditioners are [`Identity`] (the plain gradient; `None` of an `Option<P>` is the same)
//! and the per-unit Fisher blocks of a Helmholtz machine or their diagonal
//! ([`FisherPreconditioner`](super::natural::FisherPreconditioner)). `train::natural::Natural`
//! wraps any algorithm that exposes its gradients with one.

use crate::error::{Error, Result};
use crate::models::ParamSet;

/// What a preconditioner's checkpoint holds: the samples of its last refresh as named tensors
/// and the step they were drawn at (a resumed run refits the same factors from them).
#[derive(Clone, Debug, PartialEq)]
pub struct PreconditionerState {
    /// Step of the last refresh.
    pub step: u64,
    /// The samples, by name.
    pub tensors: ParamSet,
}

/// Turns ordinary gradients of a model `M` into preconditioned (natural) ones. It is refitted
/// from samples `S` that the gradient pass gathers when [`Preconditioner::needs_refresh`] says
/// so, and reused in between.
pub trait Preconditioner<M, S> {
    /// Whether step `step` must refresh before it preconditions.
    fn needs_refresh(&self, step: u64) -> bool;

    /// Refits from `samples`, gathered by the gradient pass of step `step`.
    fn refresh(&mut self, model: &M, samples: S, step: u64) -> Result<()>;

    /// Preconditions `grads` (the layout of the model's parameters) in place, at step `step`.
    fn precondition(&self, model: &M, grads: &mut ParamSet, step: u64) -> Result<()>;

    /// What a checkpoint keeps; `None` when there is nothing (no refresh yet, or no state).
    fn state(&self) -> Option<PreconditionerState>;

    /// Continues from a checkpoint's `state` (refits what it held); a state that does not fit
    /// `model` is refused with an error that says what differs.
    fn restore(&mut self, model: &M, state: PreconditionerState) -> Result<()>;
}

/// The plain gradient: no refresh, gradients unchanged, no state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl<M, S> Preconditioner<M, S> for Identity {
    fn needs_refresh(&self, _: u64) -> bool {
        false
    }

    fn refresh(&mut self, _: &M, _: S, _: u64) -> Result<()> {
        Ok(())
    }

    fn precondition(&self, _: &M, _: &mut ParamSet, _: u64) -> Result<()> {
        Ok(())
    }

    fn state(&self) -> Option<PreconditionerState> {
        None
    }

    fn restore(&mut self, _: &M, state: PreconditionerState) -> Result<()> {
        if state.tensors.tensors.is_empty() {
            Ok(())
        } else {
            Err(Error::Checkpoint(format!(
                "the plain gradient keeps no preconditioner state, the checkpoint holds {} tensors",
                state.tensors.tensors.len()
            )))
        }
    }
}

/// A preconditioner chosen at run time: `None` is [`Identity`].
impl<M, S, P: Preconditioner<M, S>> Preconditioner<M, S> for Option<P> {
    fn needs_refresh(&self, step: u64) -> bool {
        self.as_ref().is_some_and(|p| p.needs_refresh(step))
    }

    fn refresh(&mut self, model: &M, samples: S, step: u64) -> Result<()> {
        match self {
            Some(p) => p.refresh(model, samples, step),
            None => Ok(()),
        }
    }

    fn precondition(&self, model: &M, grads: &mut ParamSet, step: u64) -> Result<()> {
        match self {
            Some(p) => p.precondition(model, grads, step),
            None => Ok(()),
        }
    }

    fn state(&self) -> Option<PreconditionerState> {
        self.as_ref().and_then(|p| p.state())
    }

    fn restore(&mut self, model: &M, state: PreconditionerState) -> Result<()> {
        match self {
            Some(p) => p.restore(model, state),
            None => <Identity as Preconditioner<M, S>>::restore(&mut Identity, model, state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Tensor;

    #[test]
    fn identity_leaves_gradients_unchanged_and_keeps_nothing() {
        let grads = ParamSet {
            tensors: vec![Tensor {
                name: "w".into(),
                shape: vec![3],
                data: vec![1.0, -0.0, f32::MAX],
            }],
        };
        let mut out = grads.clone();
        let mut identity = Identity;
        let pre: &mut dyn Preconditioner<(), ()> = &mut identity;
        assert!(!pre.needs_refresh(0));
        pre.refresh(&(), (), 0).unwrap();
        pre.precondition(&(), &mut out, 0).unwrap();
        let bits = |p: &ParamSet| {
            p.tensors[0]
                .data
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&out), bits(&grads));
        assert!(pre.state().is_none());
        let empty = PreconditionerState {
            step: 3,
            tensors: ParamSet::default(),
        };
        pre.restore(&(), empty).unwrap();
        let full = PreconditionerState {
            step: 3,
            tensors: grads,
        };
        assert!(pre.restore(&(), full.clone()).is_err());
        let mut none: Option<Identity> = None;
        assert!(Preconditioner::<(), ()>::restore(&mut none, &(), full).is_err());
    }
}
