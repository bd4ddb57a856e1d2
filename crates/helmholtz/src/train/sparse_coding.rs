//! Learning sparse codes with the entropy objective (entropy.md §2.6): full-batch L-BFGS on the
//! dictionary and every posterior jointly (the bars experiment), or on the posteriors alone with
//! the dictionary fixed (the ground-truth reference of the bars experiment).
//!
//! L-BFGS is the library's in-place one ([`crate::optim::quasi_newton`]: a ring-buffer memory
//! and a strong-Wolfe line search), on −L^H(θ) in f64.

use faer::MatRef;

use crate::error::{Error, Result};
use crate::models::sparse_coding::{PosteriorKind, SparseCoding};
use crate::objectives::sparse_coding::{
    EntropyTerms, entropy_objective, entropy_objective_posteriors, standard_elbo_points,
};
use crate::train::lbfgs::solve;
use crate::train::trainer::{Algorithm, Batch, EpochRecord, StepContext, StepStats};

use crate::optim::quasi_newton::minimize_in_place;
pub use crate::optim::quasi_newton::{HistoryPrecision, LbfgsConfig, defaults};

/// What is optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The dictionary and the posteriors.
    All,
    /// The posteriors only (the dictionary stays fixed).
    Posteriors,
}

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// The entropies and closed-form λ, σ² at the end.
    pub terms: EntropyTerms,
    /// L-BFGS iterations taken.
    pub iterations: u64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
    /// Why it stopped.
    pub stopped: String,
}

/// Maximises L^H (prior entropy weighted by `beta`) over `target` with full-batch L-BFGS,
/// writing the result into `model`. `progress(iteration, objective)` is called after every
/// iteration.
pub fn fit_lbfgs(
    model: &mut SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    target: Target,
    config: &LbfgsConfig,
    progress: impl FnMut(u64, f64),
) -> Result<FitReport> {
    fit_lbfgs_scaled(model, x, beta, target, config, 1.0, progress)
}

/// [`fit_lbfgs`] with the posteriors' entries handed to L-BFGS divided by `posterior_scale`
/// (c), the dictionary's as they are: a fixed diagonal preconditioner, the same as starting
/// every iteration's inverse-Hessian estimate from γ·diag(1, c²) instead of γI. The maximiser
/// is the same; the path to it and the number of iterations are not. The dictionary's gradient
/// sums over all N points, each posterior's over one, so the two blocks' curvatures differ by
/// far more than any single γ fits (docs/BENCHMARKS.md measures c on the bars). With
/// [`Target::Posteriors`] every entry is scaled alike, which changes only the first step.
#[allow(clippy::too_many_arguments)]
pub fn fit_lbfgs_scaled(
    model: &mut SparseCoding,
    x: MatRef<'_, f64>,
    beta: f64,
    target: Target,
    config: &LbfgsConfig,
    posterior_scale: f64,
    mut progress: impl FnMut(u64, f64),
) -> Result<FitReport> {
    config.validate()?;
    if !(beta.is_finite() && beta > 0.0) {
        return Err(Error::Config(format!(
            "the annealing factor β must be positive, got {beta}"
        )));
    }
    check_posterior_scale(posterior_scale)?;
    let offset = match target {
        Target::All => 0,
        Target::Posteriors => model.dim * model.n_latents,
    };
    // Fails early, with the library's error, on bad data or a degenerate start.
    entropy_objective(model, x, beta, None)?;
    // The optimised entries of θ: from `offset` on, without the upper triangles of full
    // posteriors' factors (never read, their gradient always 0), which would otherwise make up
    // 45 % of the L-BFGS vectors at H = 10.
    let runs = Runs::new(
        &free_entries(model, offset),
        model.dim * model.n_latents,
        posterior_scale,
    );
    let mut start = vec![0.0; runs.len];
    runs.gather(&model.theta, &mut start, |v, c| v / c);
    // −L^H and its gradient over the optimised entries, in buffers made once (the objective
    // writes every entry of its gradient).
    let mut trial = model.clone();
    let mut full = vec![0.0; trial.theta.len()];
    let negative = |p: &[f64], g: &mut [f64]| -> Result<f64> {
        runs.scatter(p, &mut trial.theta);
        let terms = if offset == 0 {
            entropy_objective(&trial, x, beta, Some(&mut full))?
        } else {
            entropy_objective_posteriors(&trial, x, beta, &mut full)?
        };
        runs.gather(&full, g, |v, c| -v * c);
        Ok(-terms.objective(beta))
    };
    // One full-batch solve: the one-step case of the trainer.
    let on_iteration = |i, cost: f64| {
        progress(i, -cost);
        Ok(())
    };
    let minimum = solve(negative, start, config.clone(), on_iteration).map_err(|e| match e {
        Error::Diverged(m) => Error::Diverged(format!("{m} (entropy objective)")),
        other => other,
    })?;
    runs.scatter(&minimum.param, &mut model.theta);
    let terms = entropy_objective(model, x, beta, None)?;
    Ok(FitReport {
        terms,
        iterations: minimum.iterations,
        evaluations: minimum.evaluations,
        stopped: minimum.stopped,
    })
}

/// Checks a [`fit_lbfgs_scaled`] factor (the config key `train.posterior_scale`): finite and
/// positive.
pub fn check_posterior_scale(posterior_scale: f64) -> Result<()> {
    if !(posterior_scale.is_finite() && posterior_scale > 0.0) {
        return Err(Error::Config(format!(
            "train.posterior_scale must be a positive number, got {posterior_scale}"
        )));
    }
    Ok(())
}

/// The optimised entries of θ as runs of consecutive entries, each with its scale: L-BFGS's
/// vector is the runs one after the other, divided by their scales.
struct Runs {
    /// (first entry of θ, length, scale).
    runs: Vec<(usize, usize, f64)>,
    /// Their total length.
    len: usize,
}

impl Runs {
    /// The runs of `free` (increasing), split where the posteriors start (entry `posteriors`
    /// of θ), those from there on scaled by `scale`.
    fn new(free: &[usize], posteriors: usize, scale: f64) -> Self {
        let mut runs: Vec<(usize, usize, f64)> = Vec::new();
        for &i in free {
            let c = if i >= posteriors { scale } else { 1.0 };
            match runs.last_mut() {
                Some((first, len, s)) if *first + *len == i && *s == c => *len += 1,
                _ => runs.push((i, 1, c)),
            }
        }
        Runs {
            len: free.len(),
            runs,
        }
    }

    /// θ's optimised entries ← the L-BFGS vector `p` times the scales.
    fn scatter(&self, p: &[f64], theta: &mut [f64]) {
        let mut at = 0;
        for &(first, len, c) in &self.runs {
            let (from, to) = (&p[at..at + len], &mut theta[first..first + len]);
            if c == 1.0 {
                to.copy_from_slice(from);
            } else {
                to.iter_mut().zip(from).for_each(|(t, v)| *t = v * c);
            }
            at += len;
        }
    }

    /// `out` ← map(θ's optimised entry, its scale) for every optimised entry of `theta`.
    fn gather(&self, theta: &[f64], out: &mut [f64], map: impl Fn(f64, f64) -> f64) {
        let mut at = 0;
        for &(first, len, c) in &self.runs {
            let (from, to) = (&theta[first..first + len], &mut out[at..at + len]);
            to.iter_mut().zip(from).for_each(|(o, v)| *o = map(*v, c));
            at += len;
        }
    }
}

/// How many entries of θ a full-batch fit optimises (the length of its L-BFGS vectors): all
/// but the upper triangles of full posteriors' Cholesky blocks.
pub fn optimised_len(model: &SparseCoding) -> usize {
    free_entries(model, 0).len()
}

/// The entries of θ from `offset` on that the objective reads: all but the upper triangles of
/// full posteriors' Cholesky blocks.
fn free_entries(model: &SparseCoding, offset: usize) -> Vec<usize> {
    let (d, h, n) = (model.dim, model.n_latents, model.n_points);
    let scales = d * h + h * n;
    match model.kind {
        PosteriorKind::Full => (offset..scales)
            .chain((0..n).flat_map(|j| {
                let block = scales + j * h * h;
                (0..h).flat_map(move |c| (c..h).map(move |r| block + c * h + r))
            }))
            .collect(),
        _ => (offset..model.theta.len()).collect(),
    }
}

/// The entropy-annealing factor β on the prior-entropy term, as a function of the epoch
/// (entropy.md §2.5). While β > 1 the objective is not the ELBO.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Annealing {
    /// β = 1 throughout.
    #[default]
    None,
    /// β = max(1, 2·(5 − epoch)): 10, 8, 6, 4, 2, then 1 (the authors' EM schedule for patches).
    EmPrior,
    /// β = max(1, 2 − 0.1·epoch): from 2 down to 1 over 10 epochs (the authors' Adam schedule).
    Linear,
    /// β = values\[epoch\], the last value repeating.
    Steps {
        /// One β per epoch, each ≥ 1.
        values: Vec<f64>,
    },
}

impl Annealing {
    /// β at `epoch` (counted from 0).
    pub fn beta(&self, epoch: usize) -> f64 {
        match self {
            Annealing::None => 1.0,
            Annealing::EmPrior => (2.0 * (5.0 - epoch as f64)).max(1.0),
            Annealing::Linear => (2.0 - 0.1 * epoch as f64).max(1.0),
            Annealing::Steps { values } => values[epoch.min(values.len() - 1)],
        }
    }

    /// Checks a user-defined schedule.
    pub fn validate(&self) -> Result<()> {
        if let Annealing::Steps { values } = self
            && (values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v >= 1.0)))
        {
            return Err(Error::Config(format!(
                "an annealing schedule needs at least one value and every β ≥ 1, got {values:?}"
            )));
        }
        Ok(())
    }
}

/// Settings of EM-style mini-batch learning (entropy.md §2.6): per batch an E-step (L-BFGS on
/// the batch's posteriors, warm-started from their last values) and an M-step (one gradient
/// step on the dictionary).
#[derive(Clone, Debug, PartialEq)]
pub struct EmConfig {
    /// Points per batch (λ and σ² are computed from each batch; keep it ≥ H).
    pub batch_size: usize,
    /// L-BFGS of the E-step (the authors: 100 iterations, history 20).
    pub e_step: LbfgsConfig,
    /// Step size of the M-step's gradient ascent on W̃ (the authors: 0.5).
    pub lr: f64,
}

/// Averages over the batches of one EM epoch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochStats {
    /// β of the epoch.
    pub beta: f64,
    /// Mean over batches of the annealed objective after the E-step.
    pub objective: f64,
    /// Mean over batches of L^H (β = 1) after the E-step.
    pub elbo: f64,
    /// Mean posterior entropy, prior entropy and noise entropy (batch means).
    pub entropies: [f64; 3],
    /// Batches.
    pub batches: usize,
}

impl EpochStats {
    /// Adds one batch's terms (the objective weighted by `beta`).
    pub fn add(&mut self, terms: &EntropyTerms, beta: f64) {
        self.objective += terms.objective(beta);
        self.elbo += terms.objective(1.0);
        for (s, t) in self
            .entropies
            .iter_mut()
            .zip([terms.posterior, terms.prior, terms.noise])
        {
            *s += t;
        }
        self.batches += 1;
    }

    /// Ends an epoch: its means go into `record` as `train`, and the sums start afresh.
    pub fn close_into(&mut self, record: &mut EpochRecord) {
        let mut stats = std::mem::take(self);
        stats.finish();
        record.fields.insert(
            "train".into(),
            serde_json::to_value(&stats).unwrap_or_default(),
        );
    }

    /// Turns the sums into means over the batches.
    pub fn finish(&mut self) {
        let n = self.batches.max(1) as f64;
        self.objective /= n;
        self.elbo /= n;
        self.entropies.iter_mut().for_each(|s| *s /= n);
    }
}

/// One EM step on a minibatch of the points of `model` (which holds every point's posterior):
/// the E-step fits the batch's posteriors (warm-started), the M-step takes one gradient step on
/// the dictionary, at the annealing factor β of the epoch. With [`super::Trainer`], the epochs
/// visit the points in an order drawn from (seed, epoch); the epoch's averages go into its
/// record as `train`.
#[derive(Clone, Debug)]
pub struct SparseEmStep {
    /// Batch size, E-step and M-step settings.
    pub em: EmConfig,
    /// β by epoch.
    pub anneal: Annealing,
    /// Sums over the batches of the current epoch.
    pub stats: EpochStats,
}

impl SparseEmStep {
    /// Checks the settings.
    pub fn new(em: EmConfig, anneal: Annealing) -> Result<Self> {
        if em.batch_size == 0 || !(em.lr.is_finite() && em.lr > 0.0) {
            return Err(Error::Config(format!(
                "EM needs batch_size ≥ 1 and a positive lr, got {} and {}",
                em.batch_size, em.lr
            )));
        }
        anneal.validate()?;
        Ok(SparseEmStep {
            em,
            anneal,
            stats: EpochStats::default(),
        })
    }
}

impl Algorithm<SparseCoding> for SparseEmStep {
    type Scalar = f64;

    fn step(
        &mut self,
        model: &mut SparseCoding,
        batch: &Batch<'_, f64>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        let beta = self.anneal.beta(ctx.epoch);
        self.stats.beta = beta;
        let mut part = gather_points(model, batch.indices);
        let xb = batch.mat();
        fit_lbfgs(
            &mut part,
            xb,
            beta,
            Target::Posteriors,
            &self.em.e_step,
            |_, _| {},
        )?;
        let mut grad = vec![0.0; part.theta.len()];
        let terms = entropy_objective(&part, xb, beta, Some(&mut grad))?;
        let dictionary = model.dim * model.n_latents;
        for (w, g) in part.theta[..dictionary].iter_mut().zip(&grad[..dictionary]) {
            *w += self.em.lr * g;
        }
        scatter(&part, model, batch.indices);
        self.stats.add(&terms, beta);
        let n = batch.n_points();
        Ok(StepStats {
            objective_sum: terms.objective(beta) * n as f64,
            points: n,
        })
    }

    fn end_epoch(&mut self, record: &mut EpochRecord) {
        self.stats.close_into(record);
    }
}

/// A model over the points `indices` of `model` (its dictionary, their posteriors) and their data.
pub fn gather(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    indices: &[usize],
) -> (SparseCoding, faer::Mat<f64>) {
    let xb = faer::Mat::from_fn(model.dim, indices.len(), |r, j| x[(r, indices[j])]);
    (gather_points(model, indices), xb)
}

/// A model over the points `indices` of `model`: its dictionary and their posteriors.
pub fn gather_points(model: &SparseCoding, indices: &[usize]) -> SparseCoding {
    let (d, h) = (model.dim, model.n_latents);
    let len = SparseCoding::scale_len(model.kind, h);
    let (w, mu, scales) = model.blocks();
    let mut theta = w.to_vec();
    for &i in indices {
        theta.extend_from_slice(&mu[i * h..(i + 1) * h]);
    }
    for &i in indices {
        theta.extend_from_slice(&scales[i * len..(i + 1) * len]);
    }
    SparseCoding {
        dim: d,
        n_latents: h,
        n_points: indices.len(),
        kind: model.kind,
        theta,
        scale_floor: model.scale_floor,
        scale_param: model.scale_param,
    }
}

/// Writes the dictionary and the posteriors of `batch` (made by [`gather`]) back into `model`.
pub fn scatter(batch: &SparseCoding, model: &mut SparseCoding, indices: &[usize]) {
    let h = model.n_latents;
    let len = SparseCoding::scale_len(model.kind, h);
    let (bw, bmu, bscales) = batch.blocks();
    let (w, mu, scales) = model.blocks_mut();
    w.copy_from_slice(bw);
    for (j, &i) in indices.iter().enumerate() {
        mu[i * h..(i + 1) * h].copy_from_slice(&bmu[j * h..(j + 1) * h]);
        scales[i * len..(i + 1) * len].copy_from_slice(&bscales[j * len..(j + 1) * len]);
    }
}

/// L^H per point on data `x` with the dictionary of `model` fixed: posteriors from the unit
/// Gaussian at zero, optimised by the E-step in batches of `batch_size` (λ and σ² per batch, as
/// in training). Returns the batch-mean entropies and the fitted posteriors.
pub fn evaluate(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    batch_size: usize,
    e_step: &LbfgsConfig,
) -> Result<(EpochStats, SparseCoding)> {
    let n = x.ncols();
    let mut fitted = SparseCoding::new(model.dim, model.n_latents, n, model.kind, 0)?
        .with_scale_param(model.scale_param);
    fitted.scale_floor = model.scale_floor;
    fitted.blocks_mut().0.copy_from_slice(model.blocks().0);
    let stats = fit_posteriors(&mut fitted, x, batch_size, e_step)?;
    Ok((stats, fitted))
}

/// Optimises the posteriors of `model` (one per column of `x`, starting from their current
/// values) by the E-step in batches of `batch_size`, with the dictionary fixed; returns the
/// batch-mean L^H and entropies after the fit.
pub fn fit_posteriors(
    model: &mut SparseCoding,
    x: MatRef<'_, f64>,
    batch_size: usize,
    e_step: &LbfgsConfig,
) -> Result<EpochStats> {
    let n = x.ncols();
    let mut stats = EpochStats {
        beta: 1.0,
        ..EpochStats::default()
    };
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let (mut batch, xb) = gather(model, x, chunk);
        let report = fit_lbfgs(
            &mut batch,
            xb.as_ref(),
            1.0,
            Target::Posteriors,
            e_step,
            |_, _| {},
        )?;
        scatter(&batch, model, chunk);
        stats.add(&report.terms, 1.0);
    }
    stats.finish();
    Ok(stats)
}

/// The posterior of each column of `x` under a model whose dictionary (that of `model`), λ and
/// σ² are held: each point's q_n, started at the unit Gaussian at zero, maximises its own
/// standard ELBO F_n(λ, σ²) by L-BFGS ([`standard_elbo_points`]). The points are solved one by
/// one (in parallel), so a point's posterior does not depend on the others. Returns the
/// per-point model (one posterior per column, of `model`'s family) and each point's F_n.
pub fn fit_posteriors_at(
    model: &SparseCoding,
    x: MatRef<'_, f64>,
    lambda: &[f64],
    sigma2: f64,
    e_step: &LbfgsConfig,
) -> Result<(SparseCoding, Vec<f64>)> {
    use rayon::prelude::*;
    e_step.validate()?;
    let (d, h, n) = (model.dim, model.n_latents, x.ncols());
    if x.nrows() != d || n == 0 {
        return Err(Error::Dimension(format!(
            "{}×{} data for a sparse-coding model with D = {d}",
            x.nrows(),
            n
        )));
    }
    let mut single = SparseCoding::new(d, h, 1, model.kind, 0)?.with_scale_param(model.scale_param);
    single.scale_floor = model.scale_floor;
    single.blocks_mut().0.copy_from_slice(model.blocks().0);
    let offset = d * h;
    let solved: Vec<(Vec<f64>, f64)> = (0..n)
        .into_par_iter()
        .map(|j| {
            let point = x.subcols(j, 1);
            let mut trial = single.clone();
            let mut grad = vec![0.0; trial.theta.len()];
            let negative = |p: &[f64], g: &mut [f64]| -> Result<f64> {
                trial.theta[offset..].copy_from_slice(p);
                grad.fill(0.0);
                let f = standard_elbo_points(&trial, point, lambda, sigma2, Some(&mut grad))?;
                for (g, v) in g.iter_mut().zip(&grad[offset..]) {
                    *g = -v;
                }
                Ok(-f[0])
            };
            let mut param = single.theta[offset..].to_vec();
            let minimum = minimize_in_place(negative, &mut param, e_step, |_, _| Ok(()))?;
            Ok((param, -minimum.value))
        })
        .collect::<Result<_>>()?;
    let mut fitted = SparseCoding::new(d, h, n, model.kind, 0)?.with_scale_param(model.scale_param);
    fitted.scale_floor = model.scale_floor;
    fitted.blocks_mut().0.copy_from_slice(model.blocks().0);
    let len = SparseCoding::scale_len(model.kind, h);
    let (_, mu, scales) = fitted.blocks_mut();
    for (j, (param, _)) in solved.iter().enumerate() {
        mu[j * h..(j + 1) * h].copy_from_slice(&param[..h]);
        scales[j * len..(j + 1) * len].copy_from_slice(&param[h..]);
    }
    Ok((fitted, solved.into_iter().map(|(_, value)| value).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// L-BFGS optimises every entry the objective reads and none other: the entries left out
    /// are exactly the upper triangles of the full factors, and the objective's gradient there
    /// is zero.
    #[test]
    fn the_free_entries_are_those_the_objective_reads() {
        let (d, h, n) = (5, 3, 4);
        let x = Mat::from_fn(d, n, |r, c| ((r * 7 + c * 3) % 5) as f64 - 2.0);
        for kind in [PosteriorKind::Full, PosteriorKind::Diagonal] {
            let model = SparseCoding::new(d, h, n, kind, 1).unwrap();
            let all = free_entries(&model, 0);
            let tail = free_entries(&model, d * h);
            let scales = match kind {
                PosteriorKind::Full => h * (h + 1) / 2,
                PosteriorKind::Diagonal => h,
            };
            assert_eq!(all.len(), d * h + n * (h + scales));
            assert_eq!(tail, all[d * h..]);
            let mut grad = vec![0.0; model.theta.len()];
            entropy_objective(&model, x.as_ref(), 1.0, Some(&mut grad)).unwrap();
            for (i, g) in grad.iter().enumerate() {
                if !all.contains(&i) {
                    assert_eq!(
                        *g, 0.0,
                        "{kind:?}: entry {i} is left out but has a gradient"
                    );
                }
            }
            // Moving a left-out entry does not change the objective.
            let mut moved = model.clone();
            for i in (0..moved.theta.len()).filter(|i| !all.contains(i)) {
                moved.theta[i] = 3.0;
            }
            let a = entropy_objective(&model, x.as_ref(), 1.0, None).unwrap();
            let b = entropy_objective(&moved, x.as_ref(), 1.0, None).unwrap();
            assert_eq!(a, b);
        }
    }
}
