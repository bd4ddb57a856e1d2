//! Training Gaussian VAEs: Adam (or any first-order rule) on the reparameterised ELBO of
//! mini-batches, one draw per point, and the evaluation of the ELBO with its entropy
//! decomposition over a whole data set.

use faer::{Mat, MatRef};

use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};
use crate::models::vae::{GaussianVae, VaeBatch};
use crate::optim::Optimizer;

/// One epoch over the columns of `x` in an order drawn from (`seed`, `epoch`): per batch, one
/// optimizer step on −ELBO. With `optimal_variances`, σ² (and α² for VAE-2) are first set to
/// their closed-form optima for the batch (the authors' option; their gradients then vanish).
/// A non-finite ELBO or gradient stops the epoch with [`Error::Diverged`] before the parameters
/// are touched. Returns the mean of the batch ELBOs; `progress(batch, elbo)` follows the batches.
#[allow(clippy::too_many_arguments)]
pub fn vae_epoch(
    model: &mut GaussianVae,
    optimizer: &mut Optimizer,
    x: MatRef<'_, f64>,
    batch_size: usize,
    optimal_variances: bool,
    seed: u64,
    epoch: usize,
    mut progress: impl FnMut(usize, f64),
) -> Result<f64> {
    if batch_size == 0 || x.nrows() != model.dim() {
        return Err(Error::Dimension(format!(
            "a VAE of D = {} given {}-dimensional data in batches of {batch_size}",
            model.dim(),
            x.nrows()
        )));
    }
    let order = Stream::new(seed, &[ids::SHUFFLE, epoch as u64]).permutation(x.ncols());
    let mut grads = model.params.zeros_like();
    let mut total = 0.0;
    let mut batches = 0;
    for (b, indices) in order.chunks(batch_size).enumerate() {
        let xb = Mat::from_fn(x.nrows(), indices.len(), |r, j| x[(r, indices[j])]);
        let eps = model.noise_from(
            indices.len(),
            &mut Stream::new(seed, &[ids::TRAIN, epoch as u64, b as u64]),
        );
        if optimal_variances {
            model.set_optimal_variances(xb.as_ref(), eps.as_ref())?;
        }
        let batch = model.elbo(xb.as_ref(), eps.as_ref(), Some(&mut grads))?;
        if !batch.elbo.is_finite() {
            return Err(Error::Diverged(format!(
                "epoch {}, batch {b}: ELBO {}",
                epoch + 1,
                batch.elbo
            )));
        }
        optimizer.ascend(
            &mut model.params,
            &mut grads,
            &format!("epoch {}, batch {b}", epoch + 1),
        )?;
        total += batch.elbo;
        batches += 1;
        progress(b, batch.elbo);
    }
    Ok(total / batches.max(1) as f64)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mnist::{MNIST_SUBDIR, has_training_images};
    use crate::data::{default_data_dir, load_mnist_dir};
    use crate::models::mlp::Activation;
    use crate::models::vae::VaeKind;
    use crate::optim::{OptimizerConfig, Schedule};

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
        let mut optimizer = Optimizer::new(
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
        let mut gaps = Vec::new();
        for epoch in 0..250 {
            vae_epoch(
                &mut model,
                &mut optimizer,
                x.as_ref(),
                20,
                false,
                0,
                epoch,
                |_, _| {},
            )
            .unwrap();
            if (epoch + 1) % 50 == 0 {
                let eval = evaluate_vae(&model, x.as_ref(), 500, 1).unwrap();
                eprintln!(
                    "epoch {}: ELBO {:.3}, entropy sum {:.3}, gap {:.3}",
                    epoch + 1,
                    eval.elbo,
                    eval.entropies.entropy_sum(),
                    eval.entropies.gap()
                );
                gaps.push((eval.entropies.gap().abs(), eval.entropies.relative_gap()));
            }
        }
        for pair in gaps.windows(2) {
            assert!(pair[1].0 < pair[0].0, "the gap grew: {gaps:?}");
        }
        assert!(gaps[0].0 > 50.0 * gaps[4].0, "{gaps:?}");
        assert!(gaps[4].1 < 0.01, "{gaps:?}");
    }
}
