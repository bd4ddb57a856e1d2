//! Evaluation of a Helmholtz-machine run: the observer that validates, early-stops and
//! estimates the test log-likelihood after each epoch, and the importance-sampling estimates
//! of a run's splits (with their standard errors and BiHM's p* = p̃*/Z²) that it and
//! [`Run`](super::Run) use.

use std::time::Instant;

use serde_json::json;

use crate::dist::{Conditions, EntropySum};
use crate::error::{Error, Result};
use crate::eval::entropy::hm_entropy_sum;
use crate::eval::{
    Estimator, IsConfig, bihm_log_z2_with_error, exact_kl_from, importance_log_likelihood,
    importance_log_likelihood_and_bihm,
};
use crate::memory::bytes_of;
use crate::models::HelmholtzMachine;
use crate::run::data::Points;
use crate::run::fit::entropy_fields;
use crate::run::{Config, Control, EpochRecord, Observer, RunData, Split, TrainState};
use crate::train::Variant;

/// Validation (with early stopping and the best checkpoint), test and exact-KL evaluations
/// after each epoch, as configured in `[eval]`.
pub(super) struct Evaluation<'a> {
    pub(super) config: &'a Config,
    pub(super) data: &'a RunData,
    pub(super) conditions: Conditions,
}

impl Observer<HelmholtzMachine> for Evaluation<'_> {
    fn on_epoch(
        &mut self,
        model: &HelmholtzMachine,
        record: &mut EpochRecord,
        state: &mut TrainState,
        say: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let epoch = state.epoch;
        let eval = &self.config.eval;
        let mut control = Control::Continue;
        if eval.exact_kl {
            let kl = exact_kl_from(model, &crate::data::lines3x3_distribution())?;
            record.fields.insert("kl_true_model".into(), json!(kl));
        }
        if eval.every > 0 && epoch.is_multiple_of(eval.every) && self.data.valid.n_samples() > 0 {
            let n = eval
                .max_points
                .unwrap_or(usize::MAX)
                .min(self.data.valid.n_samples());
            say(&format!(
                "validation log-likelihood, K = {} on {n} points",
                eval.k
            ));
            let ll = estimate(
                model,
                self.data,
                self.config,
                Split::Valid,
                eval.k,
                Some(n),
                Estimator::LogLikelihood,
            )?;
            record.fields.insert("valid_ll".into(), json!(ll));
            record.fields.insert("valid_k".into(), json!(eval.k));
            if eval.entropy_samples > 0 {
                let sum = entropy_sum(
                    model,
                    self.data,
                    self.config,
                    Split::Valid,
                    eval.entropy_samples,
                    Some(n),
                )?;
                entropy_fields(&sum, &self.conditions, &mut record.fields);
            }
            if state.best_valid.is_none_or(|best| ll > best) {
                state.best_valid = Some(ll);
                state.evals_since_best = 0;
                record.improved = true;
            } else {
                state.evals_since_best += 1;
                if eval.patience.is_some_and(|p| state.evals_since_best >= p) {
                    say(&format!(
                        "early stopping: no improvement in {} evaluations",
                        state.evals_since_best
                    ));
                    control = Control::Stop;
                }
            }
        }
        if eval.test_at.contains(&epoch) && self.data.test.n_samples() > 0 {
            let k = eval.test_k.unwrap_or(eval.k);
            say(&format!(
                "test log-likelihood, K = {k} on {} points",
                self.data.test.n_samples()
            ));
            let started = Instant::now();
            let dreams = self.config.eval.test_z_dreams;
            let estimate = test_estimate(model, self.data, self.config, k, dreams)?;
            let eval_s = started.elapsed().as_secs_f64();
            record
                .side_records
                .push(estimate.record(epoch, state.step, eval_s));
            say(&format!(
                "epoch {epoch}: test NLL {:.3} ± {:.3} nats (K = {k}){}",
                -estimate.ll,
                estimate.se,
                star_text(&estimate)
            ));
        }
        Ok(control)
    }
}

/// Mean importance-sampling estimate of a split of `data` under `model`.
pub(super) fn estimate(
    model: &HelmholtzMachine,
    data: &RunData,
    config: &Config,
    split: Split,
    k: usize,
    max_points: Option<usize>,
    estimator: Estimator,
) -> Result<f64> {
    let per_point = per_point_estimates(model, data, config, split, k, max_points, estimator)?;
    Ok(per_point.iter().sum::<f64>() / per_point.len() as f64)
}

/// The importance-sampling estimate of every point of a split (the first `max_points`).
pub(super) fn per_point_estimates(
    model: &HelmholtzMachine,
    data: &RunData,
    config: &Config,
    split: Split,
    k: usize,
    max_points: Option<usize>,
    estimator: Estimator,
) -> Result<Vec<f64>> {
    check_estimate_memory(model, k)?;
    let (x, n) = split_columns(data, split, max_points)?;
    let is = IsConfig {
        estimator,
        ..IsConfig::new(k, estimate_seed(config))
    };
    importance_log_likelihood(model, &x, n, 0, is)
}

/// The seed of every importance-sampling estimate of a run's splits.
fn estimate_seed(config: &Config) -> u64 {
    config.seed ^ 0x5EED_E7A1
}

fn check_estimate_memory(model: &HelmholtzMachine, k: usize) -> Result<()> {
    let threads = rayon::current_num_threads().max(1);
    let width_sum = model.sizes.iter().fold(0usize, |a, &s| a.saturating_add(s));
    // Per thread: the samples, probabilities and scores of one chunk of at most 1000 draws,
    // and one pooled bound per chunk.
    crate::memory::check_allocation(
        &format!("importance sampling with K = {k}"),
        bytes_of(&[threads, k.min(1000), width_sum], 16)
            .saturating_add(bytes_of(&[threads, k / 1000 + 1], 8)),
    )
}

/// A test-split estimate with its standard error over the points; for a BiHM run also
/// log p* = log p̃* − log Z² (nrws.md §2.3), p̃* from the same samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestEstimate {
    /// Importance samples per point.
    pub k: usize,
    /// Points evaluated.
    pub points: usize,
    /// Mean log p̂_K(x) of p.
    pub ll: f64,
    /// Its standard error over the points (sd / √n).
    pub se: f64,
    /// BiHM runs: the normalised model's estimate.
    pub bihm: Option<BihmEstimate>,
}

/// BiHM's log p* of a split: the mean of log p̃*_K(x) over the points, minus log Z².
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BihmEstimate {
    /// Mean log p̃*_K(x).
    pub log_p_tilde: f64,
    /// Its standard error over the points.
    pub se: f64,
    /// log Z² from `dreams` dreams with `inner` samples each.
    pub log_z2: f64,
    /// Its Monte Carlo standard error.
    pub log_z2_se: f64,
    /// Dreams of the log Z² estimate.
    pub dreams: usize,
    /// Inner importance samples per dream.
    pub inner: usize,
}

impl BihmEstimate {
    /// log p* = log p̃* − log Z².
    pub fn log_p_star(&self) -> f64 {
        self.log_p_tilde - self.log_z2
    }
}

impl TestEstimate {
    /// The metrics record of this estimate of the test split after `epoch` (`step`), which
    /// took `eval_s` seconds: `epoch`, `step`, `split`, `k`, the [`TestEstimate::fields`] and
    /// `eval_s`.
    pub fn record(&self, epoch: usize, step: u64, eval_s: f64) -> serde_json::Value {
        let mut record = serde_json::Map::new();
        record.insert("epoch".into(), json!(epoch));
        record.insert("step".into(), json!(step));
        record.insert("split".into(), json!("test"));
        record.insert("k".into(), json!(self.k));
        record.extend(self.fields());
        record.insert("eval_s".into(), json!(eval_s));
        serde_json::Value::Object(record)
    }

    /// The fields of a metrics record: `ll`, `nll_nats`, `nll_se`, and for BiHM
    /// `log_p_tilde`, `log_z2`, `log_z2_se`, `z_dreams`, `z_inner`, `nll_star_nats` and
    /// `nll_star_se` (the points' error and log Z²'s, added in quadrature).
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        fields.insert("ll".into(), json!(self.ll));
        fields.insert("nll_nats".into(), json!(-self.ll));
        fields.insert("nll_se".into(), json!(self.se));
        if let Some(b) = &self.bihm {
            fields.insert("log_p_tilde".into(), json!(b.log_p_tilde));
            fields.insert("log_z2".into(), json!(b.log_z2));
            fields.insert("log_z2_se".into(), json!(b.log_z2_se));
            fields.insert("z_dreams".into(), json!(b.dreams));
            fields.insert("z_inner".into(), json!(b.inner));
            fields.insert("nll_star_nats".into(), json!(-b.log_p_star()));
            fields.insert("nll_star_se".into(), json!(b.se.hypot(b.log_z2_se)));
        }
        fields
    }
}

/// ", BiHM's p*: NLL … (log Z² …)" for a BiHM estimate, else nothing.
pub(super) fn star_text(estimate: &TestEstimate) -> String {
    estimate.bihm.map_or_else(String::new, |b| {
        format!(
            "; BiHM's p*: NLL {:.3} nats (log p̃* {:.3}, log Z² {:.4} from {} dreams)",
            -b.log_p_star(),
            b.log_p_tilde,
            b.log_z2,
            b.dreams
        )
    })
}

/// Mean and standard error (sd / √n) of per-point values.
pub(super) fn mean_and_error(values: &[f64]) -> (f64, f64) {
    let (mean, sd) = crate::math::mean_and_sd(values);
    (mean, sd / (values.len() as f64).sqrt())
}

/// The test estimate of a run's model with `k` samples per point; BiHM runs add log p̃* from
/// the same samples and log Z² from `dreams` dreams with `eval.z_inner` inner samples each.
pub(super) fn test_estimate(
    model: &HelmholtzMachine,
    data: &RunData,
    config: &Config,
    k: usize,
    dreams: usize,
) -> Result<TestEstimate> {
    if config.train.algorithm != Variant::Bihm {
        let per_point = per_point_estimates(
            model,
            data,
            config,
            Split::Test,
            k,
            None,
            Estimator::LogLikelihood,
        )?;
        let (ll, se) = mean_and_error(&per_point);
        return Ok(TestEstimate {
            k,
            points: per_point.len(),
            ll,
            se,
            bihm: None,
        });
    }
    check_estimate_memory(model, k)?;
    let (x, n) = split_columns(data, Split::Test, None)?;
    let both = importance_log_likelihood_and_bihm(
        model,
        &x,
        n,
        0,
        IsConfig::new(k, estimate_seed(config)),
    )?;
    let (ll, se) = mean_and_error(&both.iter().map(|b| b.0).collect::<Vec<_>>());
    let (log_p_tilde, tilde_se) = mean_and_error(&both.iter().map(|b| b.1).collect::<Vec<_>>());
    let inner = config.eval.z_inner;
    let (log_z2, log_z2_se) = bihm_log_z2_with_error(model, dreams, inner, config.seed)?;
    Ok(TestEstimate {
        k,
        points: n,
        ll,
        se,
        bihm: Some(BihmEstimate {
            log_p_tilde,
            se: tilde_se,
            log_z2,
            log_z2_se,
            dreams,
            inner,
        }),
    })
}

/// The ELBO of a split and its longer entropy sum, by Monte Carlo over q.
pub(super) fn entropy_sum(
    model: &HelmholtzMachine,
    data: &RunData,
    config: &Config,
    split: Split,
    samples: usize,
    max_points: Option<usize>,
) -> Result<EntropySum> {
    let (x, n) = split_columns(data, split, max_points)?;
    hm_entropy_sum(model, &x, n, samples, config.seed ^ 0xE17B_0501)
}

/// The first `max_points` points of a split (all if absent) as contiguous columns, and their
/// number; the training set only when it is not binarised anew every epoch.
fn split_columns(
    data: &RunData,
    split: Split,
    max_points: Option<usize>,
) -> Result<(Vec<f32>, usize)> {
    let set = match (split, &data.train) {
        (Split::Train, Points::Grey(_)) => {
            return Err(Error::Config(
                "the training set is binarised anew every epoch; evaluate valid or test".into(),
            ));
        }
        (Split::Train, Points::Binary(set)) => set,
        (Split::Valid, _) => &data.valid,
        (Split::Test, _) => &data.test,
    };
    let n = max_points.unwrap_or(usize::MAX).min(set.n_samples());
    if n == 0 {
        return Err(Error::InvalidData(format!(
            "the {} split is empty",
            split.name()
        )));
    }
    Ok((set.columns(0, n), n))
}
