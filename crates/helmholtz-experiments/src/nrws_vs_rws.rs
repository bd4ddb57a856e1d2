//! RWS against NRWS (natural reweighted wake-sleep, with exact per-unit Fisher blocks or their
//! diagonal), BiHM and NBiHM: Helmholtz machines trained with identical data, initialisation,
//! batches and seeds, and the test NLL after every epoch against epochs and training time.
//!
//! The compared arms come either from algorithm names, each with its own optimizer rule and
//! learning rate ([`AlgorithmSettings`]), or from protocol configs (`configs/compare/*.toml`),
//! one arm per file ([`Settings::from_protocols`]). Every (arm, seed) is a
//! [`helmholtz::run::Run`] in its own directory (`LABEL-seedS`) inside the output directory: a
//! finished run there is reused, an interrupted one resumes from its last checkpoint, and a
//! directory holding anything else is refused rather than overwritten.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use helmholtz::models::HelmholtzMachine;
use helmholtz::optim::OptimizerConfig;
use helmholtz::optim::fisher::FisherKind;
use helmholtz::optim::fisher::Storage;
use helmholtz::optim::natural::NaturalConfig;
use helmholtz::run::config::{
    DataConfig, DataSource, EvalConfig, ModelConfig, OptimizerSection, TrainConfig,
};
use helmholtz::run::{CONFIG_FILE, Config, Observer, Outcome, Run, SUMMARY_FILE, config_changes};
use helmholtz::train::Variant;
use helmholtz::{Error, Result};

mod report;
pub use report::{ArmRuns, Curve, CurvePoint, FinalEstimate, curve, final_estimate};

/// The compared algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Reweighted wake-sleep.
    Rws,
    /// RWS with the natural gradient of the exact per-unit Fisher blocks.
    Nrws,
    /// RWS with the diagonal of the Fisher blocks.
    NrwsDiagonal,
    /// Bidirectional Helmholtz machine.
    Bihm,
    /// BiHM with the natural gradient of the Fisher blocks.
    Nbihm,
}

impl Algorithm {
    /// All of them, in the order of the table.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Rws,
        Algorithm::Nrws,
        Algorithm::NrwsDiagonal,
        Algorithm::Bihm,
        Algorithm::Nbihm,
    ];

    /// The name in run directories, tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rws => "rws",
            Algorithm::Nrws => "nrws",
            Algorithm::NrwsDiagonal => "nrws-diagonal",
            Algorithm::Bihm => "bihm",
            Algorithm::Nbihm => "nbihm",
        }
    }

    /// The learning step and, for the natural versions, the Fisher kind.
    fn make(self) -> (Variant, Option<FisherKind>) {
        match self {
            Algorithm::Rws => (Variant::Rws, None),
            Algorithm::Nrws => (Variant::Rws, Some(FisherKind::Blocks)),
            Algorithm::NrwsDiagonal => (Variant::Rws, Some(FisherKind::Diagonal)),
            Algorithm::Bihm => (Variant::Bihm, None),
            Algorithm::Nbihm => (Variant::Bihm, Some(FisherKind::Blocks)),
        }
    }
}

/// Damping α of the natural-gradient runs (the NRWS journal configs).
pub const NATURAL_ALPHA: f64 = 0.2;
/// Importance samples per data point in training.
pub const TRAIN_K: usize = 10;

/// The comparison built from algorithm names (`helmholtz experiment nrws-vs-rws --only …`).
#[derive(Clone, Debug)]
pub struct AlgorithmSettings {
    /// Digits, MNIST or Fashion-MNIST.
    pub data: DataSource,
    /// Epochs per run.
    pub epochs: usize,
    /// Importance samples of the per-epoch test estimate.
    pub k_eval: usize,
    /// Fisher refresh cadence (steps).
    pub refresh_every: u64,
    /// Learning rate of every algorithm that `lrs` does not name.
    pub lr: f64,
    /// Learning rates of single algorithms.
    pub lrs: Vec<(Algorithm, f64)>,
    /// Optimizer rule of every algorithm that `rules` does not name (SGD by default).
    pub rule: OptimizerConfig,
    /// Optimizer rules of single algorithms (the natural gradient is fed to the rule).
    pub rules: Vec<(Algorithm, OptimizerConfig)>,
    /// The algorithms to run, in this order.
    pub algorithms: Vec<Algorithm>,
    /// Hidden layer sizes, bottom to top (default: 100, 50, 10 on digits, else 200, 100, 10).
    pub hidden: Option<Vec<usize>>,
    /// Minibatch size (default: 20 on digits, else 100).
    pub batch: Option<usize>,
}

impl AlgorithmSettings {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !matches!(
            self.data,
            DataSource::Digits | DataSource::Mnist | DataSource::FashionMnist
        ) {
            return Err(Error::Config(format!(
                "the comparison runs on digits, mnist or fashion-mnist, got {:?}",
                self.data
            )));
        }
        if self.epochs == 0 || self.batch == Some(0) {
            return Err(Error::Config(
                "--epochs and --batch must be at least 1".into(),
            ));
        }
        if self.hidden.as_ref().is_some_and(|h| h.contains(&0)) {
            return Err(Error::Config(format!(
                "--hidden sizes must be at least 1, got {:?}",
                self.hidden.as_deref().unwrap_or_default()
            )));
        }
        if self.algorithms.is_empty() {
            return Err(Error::Config(
                "--only names none of rws, nrws, nrws-diagonal, bihm, nbihm".into(),
            ));
        }
        Ok(())
    }

    /// The config of `algorithm` (seed 0): fixed binarisation, K = 10, the algorithm's
    /// optimizer rule and learning rate, the test NLL after every epoch and no validation.
    pub fn config(&self, algorithm: Algorithm) -> Result<Config> {
        let (hidden, batch) = match self.data {
            DataSource::Digits => (vec![100, 50, 10], 20),
            _ => (vec![200, 100, 10], 100),
        };
        let (variant, fisher) = algorithm.make();
        let mut train = TrainConfig::new(variant, self.batch.unwrap_or(batch), self.epochs);
        train.k = TRAIN_K;
        train.natural = fisher.map(|fisher| NaturalConfig {
            alpha: NATURAL_ALPHA,
            refresh_every: self.refresh_every,
            fisher,
            // The precision the comparisons in docs/REPRODUCTION.md were measured with.
            storage: Storage::F32,
            ..NaturalConfig::default()
        });
        let lr = self
            .lrs
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map_or(self.lr, |(_, lr)| *lr);
        let rule = self
            .rules
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map_or_else(|| self.rule.clone(), |(_, rule)| rule.clone());
        let mut config = Config::new(
            algorithm.name().to_string(),
            DataConfig::new(self.data),
            ModelConfig::new(self.hidden.clone().unwrap_or(hidden)),
            train,
            OptimizerSection::new(lr, rule),
        );
        config.eval = EvalConfig {
            every: 0,
            test_at: test_epochs(self.epochs, 1),
            test_k: Some(self.k_eval),
            ..EvalConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// One compared arm: a label (its run directories are `LABEL-seedS`) and its config.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// Name in run directories, tables and plots.
    pub label: String,
    /// The config; each seed's run takes it with its own seed and name.
    pub config: Config,
}

impl Arm {
    /// The config of the run with `seed`.
    pub fn config(&self, seed: u64) -> Config {
        let mut config = self.config.clone();
        config.seed = seed;
        config.name = format!("{}-seed{seed}", self.label);
        config
    }
}

/// Settings of the comparison: the arms, the seeds and where the runs go.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The arms, in the order of tables and plots.
    pub arms: Vec<Arm>,
    /// Number of seeds (`first_seed`, `first_seed + 1`, …).
    pub seeds: u64,
    /// The first seed (0 unless set with [`Settings::with_first_seed`]).
    pub first_seed: u64,
    /// Output directory (finished runs in it are reused, interrupted ones resumed).
    pub out: PathBuf,
    /// Seconds per epoch of some arms, measured side by side on one machine (e.g. by
    /// `scripts/bench-compare.sh`): their time axis is the epoch times this, for every seed,
    /// instead of each run's median epoch time. Set with [`Settings::with_epoch_seconds`].
    pub epoch_seconds: Vec<(String, f64)>,
}

impl Settings {
    /// One arm per algorithm of `algorithms`.
    pub fn from_algorithms(
        algorithms: &AlgorithmSettings,
        seeds: u64,
        out: PathBuf,
    ) -> Result<Self> {
        algorithms.validate()?;
        let arms = algorithms
            .algorithms
            .iter()
            .map(|&a| {
                Ok(Arm {
                    label: a.name().to_string(),
                    config: algorithms.config(a)?,
                })
            })
            .collect::<Result<_>>()?;
        Self::new(arms, seeds, out)
    }

    /// One arm per protocol config, labelled by the config's `name`, with `overrides`
    /// (`KEY=VALUE`, as `--set`) applied to each, and `LABEL:KEY=VALUE` to the arm `LABEL`
    /// only (after the others). `epochs` replaces `train.epochs`; the test NLL is estimated
    /// after every epoch with `k_eval` samples (default: the config's `eval.test_k`, else
    /// `eval.k`).
    pub fn from_protocols(
        paths: &[PathBuf],
        overrides: &[String],
        epochs: Option<usize>,
        k_eval: Option<usize>,
        seeds: u64,
        out: PathBuf,
    ) -> Result<Self> {
        // Keys hold no ':', so one before the first '=' names an arm.
        let (mut every, mut by_arm) = (Vec::new(), Vec::new());
        for o in overrides {
            let key = o.split('=').next().unwrap_or_default();
            match key.split_once(':') {
                Some((label, _)) => by_arm.push((label, &o[label.len() + 1..])),
                None => every.push(o.clone()),
            }
        }
        let mut arms: Vec<Arm> = Vec::new();
        for path in paths {
            let mut config = Config::load(path, &every)?;
            let own: Vec<String> = by_arm
                .iter()
                .filter(|(label, _)| *label == config.name)
                .map(|(_, o)| o.to_string())
                .collect();
            if !own.is_empty() {
                config = Config::load(path, &[every.clone(), own].concat())?;
            }
            if let Some(epochs) = epochs {
                config.train.epochs = epochs;
            }
            let epochs = config.train.epochs;
            config.eval.test_at = test_epochs(epochs, 1);
            config.eval.test_k = Some(k_eval.or(config.eval.test_k).unwrap_or(config.eval.k));
            config.validate()?;
            let label = config.name.clone();
            if arms.iter().any(|a| a.label == label) {
                return Err(Error::Config(format!(
                    "{}: another protocol is also named {label:?}; each arm needs its own name",
                    path.display()
                )));
            }
            arms.push(Arm { label, config });
        }
        if let Some((label, o)) = by_arm
            .iter()
            .find(|(label, _)| !arms.iter().any(|a| a.label == *label))
        {
            let names: Vec<&str> = arms.iter().map(|a| a.label.as_str()).collect();
            return Err(Error::Config(format!(
                "--set {label}:{o}: no protocol is named {label:?} (the arms: {})",
                names.join(", ")
            )));
        }
        Self::new(arms, seeds, out)
    }

    fn new(arms: Vec<Arm>, seeds: u64, out: PathBuf) -> Result<Self> {
        if seeds == 0 {
            return Err(Error::Config("--seeds must be at least 1".into()));
        }
        if arms.is_empty() {
            return Err(Error::Config("the comparison has no arm to run".into()));
        }
        if let Some(arm) = arms.iter().find(|a| {
            !matches!(
                a.config.data.source,
                DataSource::Digits | DataSource::Mnist | DataSource::FashionMnist
            )
        }) {
            return Err(Error::Config(format!(
                "{}: the comparison runs on digits, mnist or fashion-mnist, got {:?}",
                arm.label, arm.config.data.source
            )));
        }
        Ok(Settings {
            arms,
            seeds,
            first_seed: 0,
            out,
            epoch_seconds: Vec::new(),
        })
    }

    /// Takes the time axis of the named arms from `seconds` per epoch (label, seconds), e.g.
    /// side-by-side timings; refuses a label that names no arm and a time that is not
    /// positive.
    pub fn with_epoch_seconds(mut self, seconds: Vec<(String, f64)>) -> Result<Self> {
        for (i, (label, s)) in seconds.iter().enumerate() {
            if seconds[..i].iter().any(|(l, _)| l == label) {
                return Err(Error::Config(format!(
                    "--epoch-seconds gives {label} twice"
                )));
            }
            if !self.arms.iter().any(|a| &a.label == label) {
                let labels: Vec<&str> = self.arms.iter().map(|a| a.label.as_str()).collect();
                return Err(Error::Config(format!(
                    "--epoch-seconds names {label}, which is no arm of this comparison (arms: {})",
                    labels.join(", ")
                )));
            }
            if !(s.is_finite() && *s > 0.0) {
                return Err(Error::Config(format!(
                    "--epoch-seconds: {label}={s} must be a positive number of seconds"
                )));
            }
        }
        self.epoch_seconds = seconds;
        Ok(self)
    }

    /// Runs the seeds `first`, `first + 1`, … instead of 0, 1, …: seeds of one comparison can
    /// train in separate processes or sessions into one output directory, and a report over
    /// seeds 0, 1, … reuses them.
    pub fn with_first_seed(mut self, first: u64) -> Result<Self> {
        if first.checked_add(self.seeds).is_none() {
            return Err(Error::Config(format!(
                "--first-seed {first} with --seeds {}: the two must add up to less than 2^64",
                self.seeds
            )));
        }
        self.first_seed = first;
        Ok(self)
    }

    /// The seeds the comparison runs.
    pub fn seed_range(&self) -> std::ops::Range<u64> {
        self.first_seed..self.first_seed + self.seeds
    }

    /// Estimates the test NLL after every `every`-th epoch and after the last, instead of after
    /// every epoch: long runs spend less time on estimates, and their curves have fewer points.
    /// A run continued with another cadence keeps the estimates it has.
    pub fn with_test_every(mut self, every: usize) -> Result<Self> {
        if every == 0 {
            return Err(Error::Config(
                "--test-every must be at least 1 (epochs between test estimates)".into(),
            ));
        }
        for arm in &mut self.arms {
            arm.config.eval.test_at = test_epochs(arm.config.train.epochs, every);
            arm.config.validate()?;
        }
        Ok(self)
    }
}

/// The epochs after which a run of `epochs` estimates the test NLL: every `every`-th and the last.
fn test_epochs(epochs: usize, every: usize) -> Vec<usize> {
    let mut at: Vec<usize> = (every..=epochs).step_by(every).collect();
    if epochs > 0 && at.last() != Some(&epochs) {
        at.push(epochs);
    }
    at
}

/// The comparison's outcome.
#[derive(Clone, Debug)]
pub struct Report {
    /// The runs of each arm, in the order of the settings.
    pub runs: Vec<ArmRuns>,
    /// The markdown tables: test NLL at equal epochs, the time to reach each arm's final
    /// value, and the final estimates.
    pub table: String,
}

/// How [`run`] ended.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Every run finished.
    Done(Report),
    /// A signal stopped the run in this directory; its last checkpoint resumes it.
    Interrupted(PathBuf),
}

/// What the comparison tells its caller while it runs.
pub trait Progress {
    /// Before the run of `label` with `seed` trains in `dir`; `resumed_at` is the epoch it
    /// resumes from.
    fn starting(
        &mut self,
        dir: &Path,
        label: &str,
        seed: u64,
        epochs: usize,
        resumed_at: Option<usize>,
    );
    /// The observer that watches that run's training.
    fn observer(&mut self) -> &mut dyn Observer<HelmholtzMachine>;
    /// A line from the run (evaluations, early stopping).
    fn say(&mut self, line: &str);
}

/// Trains every arm with every seed (reusing finished runs in `settings.out` and resuming
/// interrupted ones) and collects the curves. A raised `stop` checkpoints the current run and
/// returns [`Finish::Interrupted`].
pub fn run(settings: &Settings, progress: &mut dyn Progress, stop: &AtomicBool) -> Result<Finish> {
    std::fs::create_dir_all(&settings.out).map_err(|e| Error::io(&settings.out, e))?;
    let mut runs = Vec::new();
    for arm in &settings.arms {
        let mut arm_runs = ArmRuns {
            label: arm.label.clone(),
            curves: Vec::new(),
            finals: Vec::new(),
            diverged: Vec::new(),
        };
        for seed in settings.seed_range() {
            let dir = settings.out.join(format!("{}-seed{seed}", arm.label));
            match train_one(&arm.config(seed), &dir, progress, stop)? {
                RunEnd::Finished => {}
                RunEnd::Diverged => arm_runs.diverged.push(seed),
                RunEnd::Interrupted => return Ok(Finish::Interrupted(dir)),
            }
            arm_runs.curves.push(curve(&dir)?);
            if let Some(f) = final_estimate(&dir)? {
                arm_runs.finals.push(f);
            }
        }
        if let Some((_, s)) = settings.epoch_seconds.iter().find(|(l, _)| l == &arm.label) {
            arm_runs.time_epochs_by(*s);
        }
        runs.push(arm_runs);
    }
    let k = settings.arms[0].config.eval.test_k.unwrap_or(0);
    let timed: Vec<&str> = settings
        .epoch_seconds
        .iter()
        .map(|(l, _)| l.as_str())
        .collect();
    let table = report::tables(&runs, k, settings.seeds, &timed);
    Ok(Finish::Done(Report { runs, table }))
}

enum RunEnd {
    Finished,
    Diverged,
    Interrupted,
}

/// Trains (or resumes, or reuses) the run of `config` in `dir`.
fn train_one(
    config: &Config,
    dir: &Path,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<RunEnd> {
    let epochs = config.train.epochs;
    let mut run = if !dir.exists() {
        progress.starting(dir, &config.name, config.seed, epochs, None);
        Run::create(config.clone(), dir)?
    } else {
        let stored_path = dir.join(CONFIG_FILE);
        if !stored_path.exists() {
            return Err(Error::Config(format!(
                "{} exists but holds no run (no {CONFIG_FILE}); the comparison does not overwrite it: remove it or choose another --out",
                dir.display()
            )));
        }
        // A longer comparison continues a run: its epochs and the test epochs that follow
        // them are the only keys that may differ.
        let mut stored = Config::load(&stored_path, &[])?;
        stored.train.epochs = epochs;
        stored.eval.test_at.clone_from(&config.eval.test_at);
        let changes = config_changes(&stored, config).map_err(|e| {
            Error::Config(format!(
                "{}: {e}; remove it or choose another --out",
                dir.display()
            ))
        })?;
        if !changes.is_empty() {
            return Err(Error::Config(format!(
                "{} was trained with another config ({}); the comparison does not overwrite it: remove it or choose another --out",
                dir.display(),
                changes.join("; ")
            )));
        }
        if let Some(end) = finished(dir, config)? {
            return Ok(end);
        }
        if !dir.join("checkpoints").join("last").exists() {
            // Created by this comparison (the same config) and stopped before its first
            // checkpoint: nothing in it to keep.
            std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            progress.starting(dir, &config.name, config.seed, epochs, None);
            Run::create(config.clone(), dir)?
        } else {
            let overrides = [
                format!("train.epochs={epochs}"),
                format!("eval.test_at={:?}", config.eval.test_at),
            ];
            let run = Run::resume(dir, &overrides)?;
            progress.starting(
                dir,
                &config.name,
                config.seed,
                epochs,
                Some(run.state.epoch),
            );
            run
        }
    };
    let step_before = run.state.step;
    let outcome = run.train(progress.observer(), stop)?;
    let stepped = run.state.step != step_before;
    run.finish(&outcome, stepped, &mut |line| progress.say(line))?;
    Ok(match outcome {
        Outcome::Completed | Outcome::EarlyStopped => RunEnd::Finished,
        Outcome::Diverged(_) => RunEnd::Diverged,
        Outcome::Interrupted if stop.load(Ordering::SeqCst) => RunEnd::Interrupted,
        Outcome::Interrupted => RunEnd::Finished,
    })
}

/// How a run in `dir` ended, if it needs no more training under `config` (its epochs and
/// patience). The summary says how the run's last call ended; the last checkpoint says whether
/// the run went on after it (a summary outlives a run resumed past it and then killed).
fn finished(dir: &Path, config: &Config) -> Result<Option<RunEnd>> {
    let path = dir.join(SUMMARY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let summary: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    Ok(match summary["outcome"].as_str() {
        Some("Diverged") => Some(RunEnd::Diverged),
        Some("Completed" | "EarlyStopped")
            if !Run::last_state(dir)?.trains_on(config.train.epochs, config.eval.patience) =>
        {
            Some(RunEnd::Finished)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests;
