//! What a patches run reports after every epoch: the held-out ELBO, Gini sparseness and atom
//! spread, the model file and the metrics record.

use faer::{Mat, MatRef};
use helmholtz::Result;
use helmholtz::models::encoder::AmortizedSparseCoding;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::objectives::sparse_coding::EntropyTerms;
use helmholtz::run::RunDir;
use helmholtz::train::sparse_coding::{EmConfig, EpochStats, evaluate};
use helmholtz::train::trainer::{Control, EpochRecord, Observer, StepRecord, TrainState};

use super::SparseConfig;
use super::files::{write_dictionary, write_model};
use super::patches::PatchesEpoch;

/// After every epoch of a patches run: the held-out ELBO, Gini sparseness and atom spread, the
/// model file and the metrics record.
pub(super) struct PatchesWatch<'a, P: FnMut(usize, usize, f64)> {
    pub(super) config: &'a SparseConfig,
    pub(super) seed: u64,
    pub(super) test_x: MatRef<'a, f64>,
    pub(super) run: &'a RunDir,
    pub(super) em: &'a EmConfig,
    pub(super) epochs: Vec<PatchesEpoch>,
    pub(super) last: Option<(Mat<f64>, EntropyTerms)>,
    pub(super) progress: &'a mut P,
}

impl<P: FnMut(usize, usize, f64)> PatchesWatch<'_, P> {
    /// Records the epoch that `record` ends, with the held-out `test` entropies of the
    /// posteriors `fitted` and the model's `dictionary`.
    fn close_epoch(
        &mut self,
        record: &EpochRecord,
        test: EpochStats,
        test_refined: Option<EpochStats>,
        fitted: &SparseCoding,
        dictionary: Mat<f64>,
        write: impl FnOnce(&EntropyTerms) -> Result<()>,
    ) -> Result<()> {
        let train: EpochStats = record
            .fields
            .get("train")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let gini = helmholtz::eval::sparseness::posterior_gini(fitted, 1000, 10, self.seed)?;
        // λ and σ² of the held-out posteriors (for the atoms' order), and the model as it is now.
        let terms = helmholtz::objectives::sparse_coding::entropy_objective(
            fitted,
            self.test_x,
            1.0,
            None,
        )?;
        write(&terms)?;
        let spread = match self.config.data.image_side(dictionary.nrows()) {
            Some(side) => Some(quartiles(helmholtz::eval::sparseness::spatial_spread(
                dictionary.as_ref(),
                side,
            )?)),
            None => None,
        };
        let epoch = PatchesEpoch {
            epoch: record.epoch,
            train,
            test,
            test_refined,
            gini,
            atom_spread: spread,
            epoch_s: record.epoch_s,
        };
        self.run.log_serialized(&epoch)?;
        self.last = Some((dictionary, terms));
        self.epochs.push(epoch);
        Ok(())
    }
}

impl<P: FnMut(usize, usize, f64)> Observer<SparseCoding> for PatchesWatch<'_, P> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        (self.progress)(record.epoch + 1, record.batch, record.objective);
        Control::Continue
    }

    fn on_epoch(
        &mut self,
        model: &SparseCoding,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        let (test, fitted) = evaluate(model, self.test_x, self.em.batch_size, &self.em.e_step)?;
        let dir = self.run.path().to_path_buf();
        self.close_epoch(record, test, None, &fitted, model.dictionary(), |terms| {
            write_model(&dir, model, terms)
        })?;
        Ok(Control::Continue)
    }
}

impl<P: FnMut(usize, usize, f64)> Observer<AmortizedSparseCoding> for PatchesWatch<'_, P> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        (self.progress)(record.epoch + 1, record.batch, record.objective);
        Control::Continue
    }

    fn on_epoch(
        &mut self,
        model: &AmortizedSparseCoding,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> Result<Control> {
        use helmholtz::train::amortized::{evaluate_amortized, per_point_model};
        use helmholtz::train::sparse_coding::fit_posteriors;
        let t = &self.config.train;
        let test = evaluate_amortized(model, self.test_x, t.batch_size)?;
        // Gini and λ of the encoder's own posteriors; refined ones only for the gap.
        let posteriors = per_point_model(model, self.test_x)?;
        let epoch = record.epoch;
        let refine = epoch.is_multiple_of(t.refine_every) || epoch == t.epochs;
        let refined = if refine {
            let mut fitted = posteriors.clone();
            Some(fit_posteriors(
                &mut fitted,
                self.test_x,
                t.batch_size,
                &self.em.e_step,
            )?)
        } else {
            None
        };
        let extra = model.params.tensors[1..].to_vec();
        let dictionary = model.dictionary();
        let dir = self.run.path().to_path_buf();
        let written = dictionary.clone();
        self.close_epoch(record, test, refined, &posteriors, dictionary, |terms| {
            write_dictionary(&dir, &written, terms, extra)
        })?;
        Ok(Control::Continue)
    }
}

/// The 25 %, 50 % and 75 % quartiles (nearest rank) of `values`.
fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}
