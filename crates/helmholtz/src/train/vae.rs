//! Training Gaussian VAEs: Adam (or any first-order rule) on the reparameterised ELBO of
//! mini-batches, one draw per point, and the evaluation of the ELBO with its entropy
//! decomposition over a whole data set.

use faer::MatRef;

use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::vae::{GaussianVae, VaeBatch};
use crate::optim::Optimizer;
use crate::train::trainer::{Algorithm, Batch, StepContext, StepStats};

/// The ELBO per point of the columns of `x` with its entropy decomposition and per-latent
/// encoder entropies, in batches of `batch_size` with one draw per point from `seed`: the same
/// draws for the same `seed`, so that evaluations of one run are comparable.
pub fn evaluate_vae(
    model: &GaussianVae,
    x: MatRef<'_, f64>,
    batch_size: usize,
    seed: u64,
) -> Result<VaeBatch> {
    if x.ncols() == 0 || batch_size == 0 {
        return Err(Error::InvalidData(
            "nothing to evaluate: no points or batches of 0".into(),
        ));
    }
    let mut total: Option<VaeBatch> = None;
    let mut seen = 0;
    for (b, start) in (0..x.ncols()).step_by(batch_size).enumerate() {
        let end = (start + batch_size).min(x.ncols());
        let eps = model.noise_from(end - start, &mut Stream::new(seed, &[ids::EVAL, b as u64]));
        let batch = model.elbo(x.subcols(start, end - start), eps.as_ref(), None)?;
        match &mut total {
            None => total = Some(batch),
            Some(t) => t.merge(&batch, seen, end - start),
        }
        seen = end;
    }
    let total = total.expect("at least one batch");
    if !total.elbo.is_finite() {
        return Err(Error::Diverged(format!("ELBO {}", total.elbo)));
    }
    Ok(total)
}

/// The ELBO of each column of `x`, one reparameterised draw per point from the stream
/// (`seed`, EVAL, a hash of the point's values): a point gets the same value in any batch, in
/// any order. Their mean estimates what [`evaluate_vae`] estimates, with other draws.
pub fn vae_point_elbos(model: &GaussianVae, x: MatRef<'_, f64>, seed: u64) -> Result<Vec<f64>> {
    use rayon::prelude::*;
    let out: Vec<f64> = (0..x.ncols())
        .into_par_iter()
        .map(|j| {
            let point = x.subcols(j, 1);
            let id = point
                .col(0)
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |hash, v| {
                    v.to_bits().to_le_bytes().iter().fold(hash, |h, &byte| {
                        (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
                    })
                });
            let eps = model.noise_from(1, &mut Stream::new(seed, &[ids::EVAL, id]));
            model.elbo(point, eps.as_ref(), None).map(|p| p.elbo)
        })
        .collect::<Result<_>>()?;
    if let Some(j) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::Diverged(format!("ELBO {} at point {j}", out[j])));
    }
    Ok(out)
}

/// One Adam (or any rule) step of a Gaussian VAE on a minibatch (with [`super::Trainer`], the
/// epochs over the columns of the data in an order drawn from (seed, epoch)): one reparameterised draw per
/// point from the stream (seed, TRAIN, epoch, batch), σ² (and α²) optionally set to their
/// optima on the batch first. The objective is the batch's ELBO.
pub struct VaeStep {
    /// The update rule with its moments.
    pub optimizer: Optimizer,
    /// VAE-1/2: set the variances to their closed-form optima on every batch.
    pub optimal_variances: bool,
    grads: crate::models::ParamSet,
}

impl VaeStep {
    /// A step for `model`'s parameter layout.
    pub fn new(optimizer: Optimizer, optimal_variances: bool, model: &GaussianVae) -> Self {
        VaeStep {
            optimizer,
            optimal_variances,
            grads: model.params.zeros_like(),
        }
    }
}

impl Algorithm<GaussianVae> for VaeStep {
    type Scalar = f64;

    fn step(
        &mut self,
        model: &mut GaussianVae,
        batch: &Batch<'_, f64>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let n = batch.n_points();
        if batch.dim != model.dim() {
            return Err(Error::Dimension(format!(
                "a VAE of D = {} given {}-dimensional data",
                model.dim(),
                batch.dim
            )));
        }
        let xb = batch.mat();
        let eps = model.noise_from(
            n,
            &mut Stream::new(ctx.seed, &[ids::TRAIN, ctx.epoch as u64, ctx.batch as u64]),
        );
        if self.optimal_variances {
            model.set_optimal_variances(xb, eps.as_ref())?;
        }
        let elbo = model.elbo(xb, eps.as_ref(), Some(&mut self.grads))?.elbo;
        let (epoch, b) = (ctx.epoch + 1, ctx.batch);
        if !elbo.is_finite() {
            return Err(Error::Diverged(format!(
                "epoch {epoch}, batch {b}: ELBO {elbo}; the last good checkpoint is kept"
            )));
        }
        self.optimizer.ascend(
            &mut model.params,
            &mut self.grads,
            &format!("epoch {epoch}, batch {b}"),
        )?;
        Ok(StepStats {
            objective_sum: elbo * n as f64,
            points: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mnist::{MNIST_SUBDIR, has_training_images};
    use crate::data::{default_data_dir, load_mnist_dir};
    use crate::models::mlp::Activation;
    use crate::models::vae::VaeKind;
    use crate::optim::{OptimizerConfig, Schedule};
    use crate::train::trainer::{
        Control, EpochRecord, NoCheckpoints, Observer, TrainState, Trainer,
    };
    use faer::Mat;
    use std::sync::atomic::AtomicBool;

    /// entropy.md §1.5: trained on MNIST grey levels (1000 training images) by Adam with a
    /// stepped learning-rate decay, a VAE-1's ELBO − entropy sum shrinks from hundreds of nats and
    /// ends below 1% of |ELBO|, evaluated on the training points, where the theorem is stated.
    /// σ² starts at its optimum for the first points, as the runs do.
    #[test]
    fn the_vae_gap_shrinks_on_mnist_and_ends_below_one_percent() {
        let dir = default_data_dir().join(MNIST_SUBDIR);
        if !has_training_images(&dir) {
            eprintln!(
                "skipping: no MNIST in {} (run scripts/fetch-data.sh)",
                dir.display()
            );
            return;
        }
        let (train, _) = load_mnist_dir(&dir).unwrap();
        let n = 1000;
        let x = Mat::from_fn(784, n, |r, j| f64::from(train.x[(r, j)]));
        let mut model =
            GaussianVae::new(VaeKind::Vae1, 784, &[64], 8, Activation::Tanh, 0).unwrap();
        let eps = model.noise(500, 9, 0);
        model
            .set_optimal_variances(x.subcols(0, 500), eps.as_ref())
            .unwrap();
        let model_layout = model.clone();
        let optimizer = Optimizer::new(
            OptimizerConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            1e-3,
            Schedule::Step {
                every: 3000,
                factor: 0.3,
            },
            &model.params,
        )
        .unwrap();
        /// Evaluates the ELBO and its entropy gap every 50 epochs.
        struct Gaps<'a> {
            x: MatRef<'a, f64>,
            gaps: Vec<(f64, f64)>,
        }
        impl Observer<GaussianVae> for Gaps<'_> {
            fn on_epoch(
                &mut self,
                model: &GaussianVae,
                _: &mut EpochRecord,
                state: &mut TrainState,
                _: &mut dyn FnMut(&str),
            ) -> Result<Control> {
                if state.epoch.is_multiple_of(50) {
                    let eval = evaluate_vae(model, self.x, 500, 1)?;
                    eprintln!(
                        "epoch {}: ELBO {:.3}, entropy sum {:.3}, gap {:.3}",
                        state.epoch,
                        eval.elbo,
                        eval.entropies.entropy_sum(),
                        eval.entropies.gap()
                    );
                    self.gaps
                        .push((eval.entropies.gap().abs(), eval.entropies.relative_gap()));
                }
                Ok(Control::Continue)
            }
        }
        let mut watch = Gaps {
            x: x.as_ref(),
            gaps: Vec::new(),
        };
        let trainer = Trainer {
            seed: 0,
            epochs: 250,
            batch_size: 20,
            checkpoint_every: 1,
            objective_name: "elbo",
            ..Trainer::default()
        };
        trainer
            .fit(
                &mut model,
                &mut VaeStep::new(optimizer, false, &model_layout),
                &x.as_ref(),
                &mut TrainState::default(),
                &mut [&mut watch],
                &mut NoCheckpoints,
                &AtomicBool::new(false),
            )
            .unwrap();
        let gaps = watch.gaps;
        for pair in gaps.windows(2) {
            assert!(pair[1].0 < pair[0].0, "the gap grew: {gaps:?}");
        }
        assert!(gaps[0].0 > 50.0 * gaps[4].0, "{gaps:?}");
        assert!(gaps[4].1 < 0.01, "{gaps:?}");
    }

    #[test]
    fn point_elbos_do_not_depend_on_the_batch_and_estimate_the_evaluation() {
        let mut rng = Stream::new(3, &[]);
        let x = Mat::from_fn(5, 2000, |_, _| rng.normal());
        for kind in [VaeKind::Vae1, VaeKind::Vae2, VaeKind::Vae3] {
            let model = GaussianVae::new(kind, 5, &[4], 2, Activation::Tanh, 1).unwrap();
            let each = vae_point_elbos(&model, x.as_ref(), 9).unwrap();
            assert_eq!(each.len(), 2000);
            // A point alone, or in another order, gets the same value.
            let alone = vae_point_elbos(&model, x.subcols(17, 1), 9).unwrap();
            assert_eq!(alone[0], each[17]);
            let reversed = Mat::from_fn(5, 2000, |r, c| x[(r, 1999 - c)]);
            let mut back = vae_point_elbos(&model, reversed.as_ref(), 9).unwrap();
            back.reverse();
            assert_eq!(back, each);
            // The mean agrees with the evaluation's (other draws) within Monte Carlo error.
            let total = evaluate_vae(&model, x.as_ref(), 500, 9).unwrap();
            let mean = each.iter().sum::<f64>() / 2000.0;
            let sd = (each.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 1999.0).sqrt();
            assert!(
                (mean - total.elbo).abs() < 5.0 * sd * (2.0f64 / 2000.0).sqrt(),
                "{kind:?}: {mean} vs {}",
                total.elbo
            );
            assert_ne!(each, vae_point_elbos(&model, x.as_ref(), 10).unwrap());
        }
    }
}
