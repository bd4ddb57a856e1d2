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
    /// Number of seeds (0, 1, …).
    pub seeds: u64,
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
        for seed in 0..settings.seeds {
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
mod tests {
    use super::*;
    use std::sync::Arc;

    fn digits_settings(epochs: usize) -> AlgorithmSettings {
        AlgorithmSettings {
            data: DataSource::Digits,
            epochs,
            k_eval: 100,
            refresh_every: 50,
            lr: 0.02,
            lrs: Vec::new(),
            rule: OptimizerConfig::Sgd,
            rules: Vec::new(),
            algorithms: Algorithm::ALL.to_vec(),
            hidden: None,
            batch: None,
        }
    }

    /// The typed configs are the ones the comparison wrote as TOML before.
    #[test]
    fn typed_configs_match_their_toml_form() {
        let settings =
            Settings::from_algorithms(&digits_settings(3), 1, PathBuf::from("unused")).unwrap();
        let text = r#"name = "nrws-diagonal-seed2"
            seed = 2
            [data]
            source = "digits"
            binarize = "fixed"
            [model]
            hidden = [100, 50, 10]
            [train]
            algorithm = "rws"
            k = 10
            batch_size = 20
            epochs = 3
            natural = { alpha = 0.2, refresh_every = 50, fisher = "diagonal", storage = "f32" }
            [optimizer]
            lr = 0.02
            rule = { kind = "sgd" }
            [eval]
            every = 0
            test_at = [1, 2, 3]
            test_k = 100
        "#;
        let parsed = Config::parse(text, &[], Path::new("nrws-vs-rws")).unwrap();
        let arm = |label: &str| settings.arms.iter().find(|a| a.label == label).unwrap();
        assert_eq!(arm("nrws-diagonal").config(2), parsed);
        let rws = arm("rws").config(0);
        assert!(rws.train.natural.is_none() && rws.name == "rws-seed0");
    }

    /// A rule and a learning rate given for one algorithm reach its config and no other; the
    /// natural gradient keeps its Fisher under any rule.
    #[test]
    fn each_algorithm_takes_its_own_rule_and_rate() {
        let adam = OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut algorithms = digits_settings(2);
        algorithms.rules = vec![(Algorithm::Nbihm, adam.clone())];
        algorithms.lrs = vec![(Algorithm::Nbihm, 1e-3), (Algorithm::Rws, 0.05)];
        let settings = Settings::from_algorithms(&algorithms, 1, PathBuf::from("unused")).unwrap();
        for arm in &settings.arms {
            let (rule, lr) = (&arm.config.optimizer.rule, arm.config.optimizer.lr);
            match arm.label.as_str() {
                "nbihm" => {
                    assert_eq!((rule, lr), (&adam, 1e-3));
                    assert!(arm.config.train.natural.is_some());
                    assert_eq!(arm.config.train.algorithm, Variant::Bihm);
                }
                "rws" => assert_eq!((rule, lr), (&OptimizerConfig::Sgd, 0.05)),
                _ => assert_eq!((rule, lr), (&OptimizerConfig::Sgd, 0.02)),
            }
        }
    }

    /// A fresh directory of this test process.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("helmholtz-compare-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const PROTOCOL: &str = r#"name = "rws-adam"
        [data]
        source = "digits"
        [model]
        hidden = [12]
        [train]
        algorithm = "rws"
        k = 4
        batch_size = 50
        epochs = 9
        [optimizer]
        lr = 0.001
        rule = { kind = "adam" }
        [eval]
        every = 0
        k = 20
    "#;

    /// Protocol files become arms named by their `name`, with the test NLL after every epoch;
    /// two arms of one name are refused.
    #[test]
    fn protocols_become_arms() {
        let tmp = scratch_dir("protocols");
        let a = write(&tmp, "a.toml", PROTOCOL);
        let b = write(&tmp, "b.toml", &PROTOCOL.replace("rws-adam", "bihm-adam"));
        let settings = Settings::from_protocols(
            &[a.clone(), b],
            &["train.k=5".into()],
            Some(3),
            None,
            2,
            tmp.join("out"),
        )
        .unwrap();
        let labels: Vec<&str> = settings.arms.iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["rws-adam", "bihm-adam"]);
        let config = &settings.arms[0].config;
        assert_eq!(config.train.k, 5);
        assert_eq!(config.train.epochs, 3);
        assert_eq!(config.eval.test_at, [1, 2, 3]);
        assert_eq!(config.eval.test_k, Some(20));
        // LABEL:KEY=VALUE overrides one arm, after the overrides of every arm.
        let b = tmp.join("b.toml");
        let one = |set: &[&str]| {
            let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
            Settings::from_protocols(&[a.clone(), b.clone()], &set, None, None, 1, tmp.clone())
        };
        let settings = one(&[
            "train.k=5",
            "bihm-adam:train.k=7",
            "bihm-adam:eval.patience=3",
        ])
        .unwrap();
        let (ks, patience): (Vec<usize>, Vec<Option<usize>>) = settings
            .arms
            .iter()
            .map(|a| (a.config.train.k, a.config.eval.patience))
            .unzip();
        assert_eq!(ks, [5, 7]);
        assert_eq!(patience, [None, Some(3)]);
        let unknown = one(&["nrws:train.k=7"]).unwrap_err().to_string();
        assert!(
            unknown.contains("nrws:train.k=7") && unknown.contains("rws-adam, bihm-adam"),
            "{unknown}"
        );
        let twice = Settings::from_protocols(&[a.clone(), a], &[], None, None, 1, tmp.clone());
        assert!(twice.unwrap_err().to_string().contains("rws-adam"));
    }

    /// --test-every estimates after every n-th epoch and after the last; 0 is refused.
    #[test]
    fn test_every_sets_the_estimated_epochs() {
        let tmp = scratch_dir("test-every");
        let a = write(&tmp, "a.toml", PROTOCOL);
        let settings = |epochs| {
            Settings::from_protocols(
                std::slice::from_ref(&a),
                &[],
                Some(epochs),
                None,
                1,
                tmp.clone(),
            )
            .unwrap()
        };
        let at = |s: Settings| s.arms[0].config.eval.test_at.clone();
        assert_eq!(at(settings(12).with_test_every(5).unwrap()), [5, 10, 12]);
        assert_eq!(at(settings(10).with_test_every(5).unwrap()), [5, 10]);
        assert_eq!(at(settings(3).with_test_every(5).unwrap()), [3]);
        assert_eq!(at(settings(3).with_test_every(1).unwrap()), [1, 2, 3]);
        let zero = settings(3).with_test_every(0).unwrap_err().to_string();
        assert!(zero.contains("--test-every"), "{zero}");
    }

    /// Stops the comparison after a number of steps, like a signal.
    struct StopAfter {
        steps: usize,
        stop: Arc<AtomicBool>,
        started: Vec<(String, Option<usize>)>,
    }

    impl StopAfter {
        /// Raises `stop` after `steps` steps.
        fn new(steps: usize, stop: Arc<AtomicBool>) -> Self {
            StopAfter {
                steps,
                stop,
                started: Vec::new(),
            }
        }

        /// Never stops.
        fn never() -> Self {
            Self::new(usize::MAX, Arc::new(AtomicBool::new(false)))
        }
    }

    impl Observer<HelmholtzMachine> for StopAfter {
        fn on_step(
            &mut self,
            _: &helmholtz::run::StepRecord,
            _: &helmholtz::run::TrainState,
        ) -> helmholtz::run::Control {
            self.steps = self.steps.saturating_sub(1);
            if self.steps == 0 {
                self.stop.store(true, Ordering::SeqCst);
            }
            helmholtz::run::Control::Continue
        }
    }

    impl Progress for StopAfter {
        fn starting(&mut self, _: &Path, label: &str, _: u64, _: usize, resumed_at: Option<usize>) {
            self.started.push((label.to_string(), resumed_at));
        }
        fn observer(&mut self) -> &mut dyn Observer<HelmholtzMachine> {
            self
        }
        fn say(&mut self, _: &str) {}
    }

    /// An interrupted comparison resumes where it stopped and gives the curves of one that ran
    /// through; a finished run is reused, a longer one continues it, and a directory with
    /// another config or no run is refused.
    #[test]
    fn an_interrupted_comparison_resumes_to_the_same_curves() {
        let tmp = scratch_dir("resume");
        let protocol = write(&tmp, "p.toml", PROTOCOL);
        let settings = |epochs: usize, out: &str| {
            Settings::from_protocols(
                std::slice::from_ref(&protocol),
                &[],
                Some(epochs),
                None,
                2,
                tmp.join(out),
            )
            .unwrap()
        };
        let no_stop = AtomicBool::new(false);
        let mut quiet = StopAfter::never();
        let Finish::Done(through) = run(&settings(2, "through"), &mut quiet, &no_stop).unwrap()
        else {
            panic!("not interrupted")
        };
        // Interrupt in the second epoch of seed 0 (digits: 1437 training points, 29 batches).
        let stop = Arc::new(AtomicBool::new(false));
        let mut stopper = StopAfter::new(40, stop.clone());
        let interrupted = run(&settings(2, "resumed"), &mut stopper, &stop).unwrap();
        assert!(
            matches!(interrupted, Finish::Interrupted(ref dir) if dir.ends_with("rws-adam-seed0"))
        );
        let mut again = StopAfter::never();
        let Finish::Done(resumed) = run(&settings(2, "resumed"), &mut again, &no_stop).unwrap()
        else {
            panic!("not interrupted")
        };
        assert_eq!(
            again.started,
            [
                ("rws-adam-seed0".to_string(), Some(1)),
                ("rws-adam-seed1".to_string(), None)
            ]
        );
        let nll = |r: &Report| -> Vec<Vec<f64>> {
            r.runs[0]
                .curves
                .iter()
                .map(|c| c.iter().map(|p| p.nll).collect())
                .collect()
        };
        assert_eq!(nll(&through), nll(&resumed));
        assert_eq!(nll(&resumed)[0].len(), 2);
        // Finished runs are reused; a longer comparison continues them.
        again.started.clear();
        run(&settings(2, "resumed"), &mut again, &no_stop).unwrap();
        assert!(again.started.is_empty());
        let Finish::Done(longer) = run(&settings(3, "resumed"), &mut again, &no_stop).unwrap()
        else {
            panic!("not interrupted")
        };
        assert_eq!(again.started.len(), 2);
        assert_eq!(longer.runs[0].curves[1].len(), 3);
        assert_eq!(nll(&longer)[1][..2], nll(&through)[1][..]);
        // Another config in the same place, or a directory that holds no run, is refused.
        let other = Settings::from_protocols(
            std::slice::from_ref(&protocol),
            &["optimizer.lr=0.01".into()],
            Some(3),
            None,
            1,
            tmp.join("resumed"),
        )
        .unwrap();
        let err = run(&other, &mut again, &no_stop).unwrap_err().to_string();
        assert!(
            err.contains("optimizer.lr") && err.contains("rws-adam-seed0"),
            "{err}"
        );
        std::fs::create_dir_all(tmp.join("foreign/rws-adam-seed0")).unwrap();
        let err = run(&settings(1, "foreign"), &mut again, &no_stop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no run"), "{err}");
    }

    /// A run that early stopping ended is reused; one resumed past its early stop (a raised
    /// patience) and killed before it wrote a new summary continues, although its summary
    /// still says it stopped early.
    #[test]
    fn a_run_resumed_past_its_early_stop_continues() {
        let tmp = scratch_dir("early");
        let protocol = write(&tmp, "p.toml", PROTOCOL);
        // The parameters never change (lr far below f32 resolution), so the validation
        // estimate never improves: patience p stops the run p evaluations after the first.
        let settings = |patience: usize| {
            let overrides = [
                "optimizer.lr=1e-20".to_string(),
                "optimizer.rule={ kind = \"sgd\" }".to_string(),
                "eval.every=1".to_string(),
                format!("eval.patience={patience}"),
            ];
            Settings::from_protocols(
                std::slice::from_ref(&protocol),
                &overrides,
                Some(6),
                None,
                1,
                tmp.join("out"),
            )
            .unwrap()
        };
        let no_stop = AtomicBool::new(false);
        let mut quiet = StopAfter::never();
        let Finish::Done(stopped) = run(&settings(1), &mut quiet, &no_stop).unwrap() else {
            panic!("not interrupted")
        };
        assert_eq!(stopped.runs[0].curves[0].len(), 2);
        quiet.started.clear();
        run(&settings(1), &mut quiet, &no_stop).unwrap();
        assert!(quiet.started.is_empty());
        // Resumed with patience 3, interrupted in its third epoch (29 batches an epoch), and
        // killed: no `finish`. `resume` removes the summary; one written before it did stays
        // and still says EarlyStopped.
        let dir = tmp.join("out/rws-adam-seed0");
        let stale = std::fs::read(dir.join(SUMMARY_FILE)).unwrap();
        let mut resumed = Run::resume(&dir, &["eval.patience=3".to_string()]).unwrap();
        std::fs::write(dir.join(SUMMARY_FILE), stale).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut stopper = StopAfter::new(10, stop.clone());
        assert_eq!(
            resumed.train(&mut stopper, &stop).unwrap(),
            Outcome::Interrupted
        );
        drop(resumed);
        let summary = std::fs::read_to_string(dir.join(SUMMARY_FILE)).unwrap();
        assert!(summary.contains("EarlyStopped"), "{summary}");
        let Finish::Done(continued) = run(&settings(3), &mut quiet, &no_stop).unwrap() else {
            panic!("not interrupted")
        };
        assert_eq!(quiet.started, [("rws-adam-seed0".to_string(), Some(2))]);
        assert_eq!(continued.runs[0].curves[0].len(), 4);
    }
}
