//! The natural-gradient preconditioner of Helmholtz machines: exact per-unit Fisher blocks for
//! every SBN layer of p (estimated from dreams) and of q (estimated from wake samples), refreshed
//! every `refresh_every` steps and reused in between (nrws.md §2.4–2.6).
//!
//! NRWS = RWS gradients + this preconditioner + an optimizer (plain SGD in the paper); NWS and
//! NBiHM likewise: `train::natural::Natural` wraps any of them with it.

use serde::{Deserialize, Serialize};

use super::Schedule;
use super::fisher::{
    FisherKind, FitOptions, LayerFisher, LayerSamples, Storage, precondition_prior,
};
use super::precondition::{Preconditioner, PreconditionerState};
use crate::error::{Error, Result};
use crate::models::{HelmholtzMachine, ParamSet, Tensor};

/// Settings of the natural-gradient preconditioner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaturalConfig {
    /// Damping α of (1+α)(F + αI)⁻¹ (0.2 in the NRWS journal configs). Above 10 the plain
    /// gradient is used, as in the NRWS code.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Refresh the Fisher factors every this many steps (1000 in the journal configs).
    #[serde(default = "default_refresh")]
    pub refresh_every: u64,
    /// Exact blocks or their diagonal.
    #[serde(default = "default_kind")]
    pub fisher: FisherKind,
    /// How α changes with the step count (α is the schedule's base rate), e.g.
    /// `{ kind = "exponential", rate = 55, steps = 50000 }` rises from 0.2 past 10 over 50k steps,
    /// turning the update from natural into plain gradient as in the NRWS examples.
    #[serde(default = "default_schedule")]
    pub alpha_schedule: Schedule,
    /// Precision in which the factors are kept between refreshes ("f16", "f32" or "f64"). f32
    /// and f64 factors are computed in f64 and applied with f64 accumulation; f16 (each unit's
    /// operator scaled by its largest entry) is computed in f32, quarters the memory
    /// traffic of every step, halves the work of a refresh and changes the natural step by at
    /// most about 4e-4 relative per unit at α = 0.2 (docs/BENCHMARKS.md).
    #[serde(default = "default_storage")]
    pub storage: Storage,
}

fn default_storage() -> Storage {
    Storage::F16
}

fn default_schedule() -> Schedule {
    Schedule::Constant
}

fn default_alpha() -> f64 {
    0.2
}
fn default_refresh() -> u64 {
    1000
}
fn default_kind() -> FisherKind {
    FisherKind::Blocks
}

impl Default for NaturalConfig {
    /// NRWS as the paper runs it: α = 0.2, the per-unit Fisher blocks refreshed every 1000
    /// steps, constant α, f16 storage (the config file's defaults).
    fn default() -> Self {
        NaturalConfig {
            alpha: default_alpha(),
            refresh_every: default_refresh(),
            fisher: default_kind(),
            alpha_schedule: default_schedule(),
            storage: default_storage(),
        }
    }
}

impl NaturalConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) || self.refresh_every == 0 {
            return Err(Error::Config(format!(
                "train.natural needs alpha > 0 and refresh_every ≥ 1, got alpha {} and refresh_every {}",
                self.alpha, self.refresh_every
            )));
        }
        self.alpha_schedule.validate()
    }
}

/// The samples that define the Fisher factors at a refresh: one set per generative layer (from
/// dreams) and per recognition layer (from wake samples).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FisherSamples {
    /// The step the samples were drawn at (it fixes α under a schedule).
    pub step: u64,
    /// Generative layers 0..L.
    pub generative: Vec<LayerSamples>,
    /// Recognition layers 0..L.
    pub recognition: Vec<LayerSamples>,
}

/// Per-unit Fisher-block preconditioner with cached factors.
pub struct FisherPreconditioner {
    config: NaturalConfig,
    generative: Vec<LayerFisher>,
    recognition: Vec<LayerFisher>,
    samples: Option<FisherSamples>,
    alpha: f64,
}

impl FisherPreconditioner {
    /// A preconditioner with no factors yet (the first step refreshes).
    pub fn new(config: NaturalConfig) -> Result<Self> {
        config.validate()?;
        Ok(FisherPreconditioner {
            config,
            generative: Vec::new(),
            recognition: Vec::new(),
            samples: None,
            alpha: f64::NAN,
        })
    }

    /// The settings.
    pub fn config(&self) -> &NaturalConfig {
        &self.config
    }

    /// The damping α at step `step`.
    pub fn alpha_at(&self, step: u64) -> f64 {
        self.config.alpha_schedule.rate(self.config.alpha, step)
    }

    /// Whether step `step` uses the plain gradient (α > 10, as in the NRWS code).
    pub fn is_identity_at(&self, step: u64) -> bool {
        self.alpha_at(step) > 10.0
    }

    /// Factorises every layer's damped Fisher blocks from `samples`, with α at their step.
    fn refit(&mut self, samples: FisherSamples) -> Result<()> {
        let alpha = self.alpha_at(samples.step);
        let options = FitOptions {
            storage: self.config.storage,
            refresh_every: self.config.refresh_every,
            ..FitOptions::default()
        };
        let kind = self.config.fisher;
        // Refit into the previous factors' buffers (same sizes at every refresh).
        let fit = |set: &[LayerSamples], previous: Vec<LayerFisher>| -> Result<Vec<LayerFisher>> {
            let mut previous = previous.into_iter();
            set.iter()
                .map(|s| LayerFisher::fit_with(s, alpha, kind, options, previous.next()))
                .collect()
        };
        self.generative = fit(&samples.generative, std::mem::take(&mut self.generative))?;
        self.recognition = fit(&samples.recognition, std::mem::take(&mut self.recognition))?;
        self.samples = Some(samples);
        self.alpha = alpha;
        Ok(())
    }

    /// The samples of the last refresh (stored in checkpoints so a resumed run refits the same
    /// factors).
    pub fn samples(&self) -> Option<&FisherSamples> {
        self.samples.as_ref()
    }
}

/// The per-unit Fisher blocks (or their diagonal, by [`NaturalConfig::fisher`]) of every SBN
/// layer of p and q and the exact Fisher of the top prior; refitted from the samples the
/// wake-sleep pass gathers, every `refresh_every` steps. Its state is those samples, as
/// `p.<l>.parents`, `p.<l>.probs`, `q.<l>.parents`, `q.<l>.probs`.
impl Preconditioner<HelmholtzMachine, FisherSamples> for FisherPreconditioner {
    /// Whether step `step` must refresh the factors.
    fn needs_refresh(&self, step: u64) -> bool {
        !self.is_identity_at(step)
            && (self.samples.is_none() || step.is_multiple_of(self.config.refresh_every))
    }

    /// Factorises every layer's damped Fisher blocks from `samples`, with α at `step`.
    fn refresh(
        &mut self,
        _: &HelmholtzMachine,
        mut samples: FisherSamples,
        step: u64,
    ) -> Result<()> {
        samples.step = step;
        self.refit(samples)
    }

    /// Turns the gradients of every SBN layer and of the top prior into natural gradients, with
    /// the factors of the last refresh (the plain gradient where α at `step` exceeds 10).
    fn precondition(
        &self,
        model: &HelmholtzMachine,
        grads: &mut ParamSet,
        step: u64,
    ) -> Result<()> {
        if self.is_identity_at(step) {
            return Ok(());
        }
        if self.generative.len() != model.n_layers() || self.recognition.len() != model.n_layers() {
            return Err(Error::Config(
                "the Fisher factors do not match the model; refresh first".into(),
            ));
        }
        let prior = &model.params.tensors[HelmholtzMachine::PRIOR].data;
        precondition_prior(
            prior,
            &mut grads.tensors[HelmholtzMachine::PRIOR].data,
            self.alpha,
        );
        for l in 0..model.n_layers() {
            for (fisher, index) in [
                (&self.generative[l], model.p_index(l)),
                (&self.recognition[l], model.q_index(l)),
            ] {
                let (left, right) = grads.tensors.split_at_mut(index + 1);
                fisher.precondition(&mut left[index].data, &mut right[0].data);
            }
        }
        Ok(())
    }

    fn state(&self) -> Option<PreconditionerState> {
        self.samples.as_ref().map(|samples| PreconditionerState {
            step: samples.step,
            tensors: samples.to_tensors(),
        })
    }

    fn restore(&mut self, model: &HelmholtzMachine, state: PreconditionerState) -> Result<()> {
        let mut samples = FisherSamples::from_tensors(&state.tensors, model)?;
        samples.step = state.step;
        self.refit(samples)
    }
}

impl FisherSamples {
    /// The samples as named tensors: `p.<l>.parents` (n_in × N), `p.<l>.probs` (n_out × N) for
    /// the generative layers, `q.<l>.…` for the recognition layers (the checkpoint form).
    pub fn to_tensors(&self) -> ParamSet {
        let mut tensors = Vec::new();
        for (prefix, set) in [("p", &self.generative), ("q", &self.recognition)] {
            for (l, layer) in set.iter().enumerate() {
                let n = layer.n_samples();
                tensors.push(Tensor {
                    name: format!("{prefix}.{l}.parents"),
                    shape: vec![layer.n_in, n],
                    data: layer.parents.clone(),
                });
                tensors.push(Tensor {
                    name: format!("{prefix}.{l}.probs"),
                    shape: vec![layer.n_out, n],
                    data: layer.probs.clone(),
                });
            }
        }
        ParamSet { tensors }
    }

    /// The samples of [`FisherSamples::to_tensors`] for `model` (step 0); a missing tensor, or
    /// one whose shape does not fit the model's layer, is refused.
    pub fn from_tensors(set: &ParamSet, model: &HelmholtzMachine) -> Result<Self> {
        let sizes = &model.sizes;
        let layer = |prefix: &str, l: usize| -> Result<LayerSamples> {
            let get = |what: &str| {
                set.get(&format!("{prefix}.{l}.{what}")).ok_or_else(|| {
                    Error::Checkpoint(format!("Fisher samples {prefix}.{l}.{what} are missing"))
                })
            };
            let (parents, probs) = (get("parents")?, get("probs")?);
            // p.l predicts level l from level l + 1; q.l predicts level l + 1 from level l.
            let (n_in, n_out) = if prefix == "p" {
                (sizes[l + 1], sizes[l])
            } else {
                (sizes[l], sizes[l + 1])
            };
            let fits = |t: &Tensor, rows: usize| {
                t.shape.len() == 2 && t.shape[0] == rows && t.data.len() == rows * t.shape[1]
            };
            if !fits(parents, n_in) || !fits(probs, n_out) || parents.shape[1] != probs.shape[1] {
                return Err(Error::Checkpoint(format!(
                    "Fisher samples {prefix}.{l}: parents {:?} and probs {:?} do not fit a layer of {n_in} parents and {n_out} units",
                    parents.shape, probs.shape
                )));
            }
            Ok(LayerSamples {
                n_in,
                n_out,
                parents: parents.data.clone(),
                probs: probs.data.clone(),
                sample_weights: None,
            })
        };
        Ok(FisherSamples {
            step: 0,
            generative: (0..model.n_layers())
                .map(|l| layer("p", l))
                .collect::<Result<_>>()?,
            recognition: (0..model.n_layers())
                .map(|l| layer("q", l))
                .collect::<Result<_>>()?,
        })
    }
}
