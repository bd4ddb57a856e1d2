//! Amortized sparse coding (entropy.md §2.6): the dictionary and the encoder trained jointly by
//! a first-order optimizer (the authors: Adam, lr 1e-3, batches of 512) on mini-batch estimates
//! of L^H, with λ and σ² computed from each batch.

use faer::MatRef;

use super::sparse_coding::{Annealing, EpochStats};
use super::trainer::{Algorithm, Batch, EpochRecord, StepContext, StepStats};
use crate::error::{Error, Result};

use crate::models::encoder::AmortizedSparseCoding;
use crate::models::sparse_coding::{PosteriorKind, ScaleParam, SparseCoding};
use crate::objectives::sparse_low_rank::amortized_objective;
use crate::optim::Optimizer;

/// One step of amortized sparse coding on a minibatch: the annealed objective of the batch
/// with the encoder's posteriors, its gradient in the dictionary and the encoder, one optimizer
/// step. With [`super::Trainer`], the epochs' averages go into their records as `train`.
pub struct AmortizedStep {
    /// The update rule with its moments.
    pub optimizer: Optimizer,
    /// β by epoch.
    pub anneal: Annealing,
    /// Sums over the batches of the current epoch.
    pub stats: EpochStats,
    grads: crate::models::ParamSet,
}

impl AmortizedStep {
    /// A step for `model`'s parameter layout.
    pub fn new(
        optimizer: Optimizer,
        anneal: Annealing,
        model: &AmortizedSparseCoding,
    ) -> Result<Self> {
        anneal.validate()?;
        Ok(AmortizedStep {
            optimizer,
            anneal,
            stats: EpochStats::default(),
            grads: model.params.zeros_like(),
        })
    }
}

impl Algorithm<AmortizedSparseCoding> for AmortizedStep {
    type Scalar = f64;

    fn step(
        &mut self,
        model: &mut AmortizedSparseCoding,
        batch: &Batch<'_, f64>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        if batch.dim != model.dim {
            return Err(Error::Dimension(format!(
                "amortized sparse coding of D = {} given {}-dimensional data",
                model.dim, batch.dim
            )));
        }
        let beta = self.anneal.beta(ctx.epoch);
        self.stats.beta = beta;
        let (terms, _) = amortized_objective(model, batch.mat(), beta, Some(&mut self.grads))?;
        let objective = terms.objective(beta);
        let (epoch, b) = (ctx.epoch + 1, ctx.batch);
        if !objective.is_finite() {
            return Err(Error::Diverged(format!(
                "epoch {epoch}, batch {b}: objective {objective}; the last good checkpoint is kept"
            )));
        }
        self.optimizer.ascend(
            &mut model.params,
            &mut self.grads,
            &format!("epoch {epoch}, batch {b}"),
        )?;
        self.stats.add(&terms, beta);
        let n = batch.n_points();
        Ok(StepStats {
            objective_sum: objective * n as f64,
            points: n,
        })
    }

    fn end_epoch(&mut self, record: &mut EpochRecord) {
        self.stats.close_into(record);
    }
}

/// L^H per point of the columns of `x` with the encoder's posteriors, in batches of
/// `batch_size` (λ and σ² per batch, as in training), averaged over batches.
pub fn evaluate_amortized(
    model: &AmortizedSparseCoding,
    x: MatRef<'_, f64>,
    batch_size: usize,
) -> Result<EpochStats> {
    let mut stats = EpochStats {
        beta: 1.0,
        ..EpochStats::default()
    };
    let n = x.ncols();
    let mut start = 0;
    while start < n {
        let len = batch_size.max(1).min(n - start);
        let (terms, _) = amortized_objective(model, x.subcols(start, len), 1.0, None)?;
        stats.add(&terms, 1.0);
        start += len;
    }
    stats.finish();
    Ok(stats)
}

/// The encoder's posteriors of the columns of `x` as a per-point model with the same dictionary:
/// diagonal (s = floor + |ρ|, so ρ = d − floor exactly) for rank 0, full (L = chol Σ) otherwise.
/// Fitting its posteriors ([`super::sparse_coding::fit_posteriors`]) measures the amortization gap.
pub fn per_point_model(model: &AmortizedSparseCoding, x: MatRef<'_, f64>) -> Result<SparseCoding> {
    let (d, h, n) = (model.dim, model.n_latents(), x.ncols());
    let (_, q) = amortized_objective(model, x, 1.0, None)?;
    let rank = model.encoder.rank;
    let kind = if rank == 0 {
        PosteriorKind::Diagonal
    } else {
        PosteriorKind::Full
    };
    let mut out = SparseCoding::new(d, h, n, kind, 0)?;
    if rank == 0 {
        out = out.with_scale_param(ScaleParam::Linear);
        out.scale_floor = model.encoder.floor;
    }
    out.set_dictionary(&model.raw_dictionary())?;
    let (_, mu, scales) = out.blocks_mut();
    for i in 0..n {
        for k in 0..h {
            mu[i * h + k] = q.mean[(k, i)];
        }
        if rank == 0 {
            for k in 0..h {
                scales[i * h + k] = q.diag[(k, i)] - model.encoder.floor;
            }
        } else {
            let l = q.covariance(i).llt(faer::Side::Lower).map_err(|e| {
                Error::Diverged(format!("posterior {i}: Σ is not positive definite ({e:?})"))
            })?;
            let l = l.L();
            for c in 0..h {
                for r in c..h {
                    scales[i * h * h + c * h + r] = if r == c { l[(r, c)].ln() } else { l[(r, c)] };
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::bars;
    use crate::models::encoder::GaussianEncoder;
    use crate::models::mlp::Activation;
    use crate::optim::{OptimizerConfig, Schedule};
    use crate::train::sparse_coding::{LbfgsConfig, fit_posteriors};
    use crate::train::trainer::{NoCheckpoints, TrainState, Trainer};

    #[test]
    fn adam_raises_the_objective_and_per_point_fits_close_the_amortization_gap() {
        let data = bars(3, 600, 0.1, 5);
        let (d, h) = (data.x.nrows(), data.fields.ncols());
        for rank in [0, 2] {
            let encoder = GaussianEncoder::new(d, &[32], h, rank, Activation::Tanh, 1e-3).unwrap();
            let mut model = AmortizedSparseCoding::new(d, encoder, 1).unwrap();
            let adam = OptimizerConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            };
            let optimizer = Optimizer::new(adam, 1e-2, Schedule::Constant, &model.params).unwrap();
            let before = evaluate_amortized(&model, data.x.as_ref(), 600)
                .unwrap()
                .elbo;
            let mut step = AmortizedStep::new(optimizer, Annealing::None, &model).unwrap();
            let trainer = Trainer {
                seed: 3,
                epochs: 100,
                batch_size: 100,
                ..Trainer::default()
            };
            trainer
                .fit(
                    &mut model,
                    &mut step,
                    &data.x.as_ref(),
                    &mut TrainState::default(),
                    &mut [],
                    &mut NoCheckpoints,
                    &std::sync::atomic::AtomicBool::new(false),
                )
                .unwrap();
            let after = evaluate_amortized(&model, data.x.as_ref(), 600)
                .unwrap()
                .elbo;
            assert!(after > before + 5.0, "rank {rank}: L^H {before} → {after}");
            // The per-point model reproduces the encoder's objective exactly, and fitting its
            // posteriors can only raise it (the amortization gap is ≥ 0).
            let mut per_point = per_point_model(&model, data.x.as_ref()).unwrap();
            let start = crate::objectives::sparse_coding::entropy_objective(
                &per_point,
                data.x.as_ref(),
                1.0,
                None,
            )
            .unwrap()
            .objective(1.0);
            assert!(
                (start - after).abs() < 1e-9 * after.abs(),
                "rank {rank}: {start} vs {after}"
            );
            let e_step = LbfgsConfig {
                history: 20,
                max_iters: 50,
                tol_grad: 1e-8,
                tol_cost: 1e-12,
                ..LbfgsConfig::default()
            };
            let fitted = fit_posteriors(&mut per_point, data.x.as_ref(), 600, &e_step)
                .unwrap()
                .elbo;
            assert!(
                fitted >= after - 1e-9,
                "rank {rank}: fitted {fitted} < amortized {after}"
            );
        }
    }
}
