//! RWS against NRWS (natural reweighted wake-sleep, with exact per-unit Fisher blocks or their
//! diagonal), BiHM and NBiHM: Helmholtz machines trained with identical data, initialisation,
//! batches and seeds, plain SGD with one learning rate for all, and the test NLL after every
//! epoch against epochs and training time.
//!
//! Every run is a [`helmholtz::run::Run`] in its own directory (`NAME-seedS`) inside the output
//! directory; finished runs there are reused.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use helmholtz::optim::OptimizerConfig;
use helmholtz::optim::fisher::FisherKind;
use helmholtz::optim::fisher::Storage;
use helmholtz::optim::natural::NaturalConfig;
use helmholtz::run::config::{
    DataConfig, DataSource, EvalConfig, ModelConfig, OptimizerSection, TrainConfig,
};
use helmholtz::run::{Config, METRICS_FILE, Outcome, Run, SUMMARY_FILE, Silent, read_metrics};
use helmholtz::train::Variant;
use helmholtz::{Error, Result};

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

/// Settings of the comparison.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Digits, MNIST or Fashion-MNIST.
    pub data: DataSource,
    /// Epochs per run.
    pub epochs: usize,
    /// Number of seeds (0, 1, …).
    pub seeds: u64,
    /// Output directory (finished runs in it are reused).
    pub out: PathBuf,
    /// Importance samples of the per-epoch test estimate.
    pub k_eval: usize,
    /// Fisher refresh cadence (steps).
    pub refresh_every: u64,
    /// Learning rate of plain SGD, the same for every algorithm.
    pub lr: f64,
    /// The algorithms to run, in this order.
    pub algorithms: Vec<Algorithm>,
    /// Hidden layer sizes, bottom to top (default: 100, 50, 10 on digits, else 200, 100, 10).
    pub hidden: Option<Vec<usize>>,
    /// Minibatch size (default: 20 on digits, else 100).
    pub batch: Option<usize>,
}

impl Settings {
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
        if self.epochs == 0 || self.seeds == 0 || self.batch == Some(0) {
            return Err(Error::Config(
                "--epochs, --seeds and --batch must be at least 1".into(),
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

    /// The config of `algorithm` with `seed`: fixed binarisation, K = 10, plain SGD, the test
    /// NLL after every epoch and no validation.
    pub fn config(&self, algorithm: Algorithm, seed: u64) -> Result<Config> {
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
        let name = format!("{}-seed{seed}", algorithm.name());
        let mut config = Config::new(
            name,
            DataConfig::new(self.data),
            ModelConfig::new(self.hidden.clone().unwrap_or(hidden)),
            train,
            OptimizerSection::new(self.lr, OptimizerConfig::Sgd),
        );
        config.seed = seed;
        config.eval = EvalConfig {
            every: 0,
            test_at: (1..=self.epochs).collect(),
            test_k: Some(self.k_eval),
            ..EvalConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// One point of a run's curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Epoch.
    pub epoch: f64,
    /// Cumulative training seconds at the end of the epoch.
    pub seconds: f64,
    /// Test NLL in nats.
    pub nll: f64,
}

/// The test NLL of a run after each epoch.
pub type Curve = Vec<CurvePoint>;

/// The runs of one algorithm.
#[derive(Clone, Debug)]
pub struct AlgorithmRuns {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// One curve per seed.
    pub curves: Vec<Curve>,
}

impl AlgorithmRuns {
    /// The mean curve over seeds (as long as the shortest).
    pub fn mean_curve(&self) -> Curve {
        let len = self.curves.iter().map(Vec::len).min().unwrap_or(0);
        let n = self.curves.len() as f64;
        (0..len)
            .map(|i| {
                let sum = self.curves.iter().fold((0.0, 0.0, 0.0), |acc, c| {
                    (acc.0 + c[i].epoch, acc.1 + c[i].seconds, acc.2 + c[i].nll)
                });
                CurvePoint {
                    epoch: sum.0 / n,
                    seconds: sum.1 / n,
                    nll: sum.2 / n,
                }
            })
            .collect()
    }

    /// Mean and standard deviation over seeds of the final test NLL.
    pub fn final_nll(&self) -> (f64, f64) {
        let finals: Vec<f64> = self
            .curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.nll))
            .collect();
        let mean = finals.iter().sum::<f64>() / finals.len().max(1) as f64;
        let sd = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / (finals.len().max(2) - 1) as f64)
            .sqrt();
        (mean, sd)
    }

    /// Mean training seconds per epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        let per_epoch: Vec<f64> = self
            .curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.seconds / p.epoch))
            .collect();
        per_epoch.iter().sum::<f64>() / per_epoch.len().max(1) as f64
    }
}

/// The comparison's outcome.
#[derive(Clone, Debug)]
pub struct Report {
    /// The runs of each algorithm, in the order of the settings.
    pub runs: Vec<AlgorithmRuns>,
    /// The markdown table: final test NLL (mean ± sd) and seconds per epoch.
    pub table: String,
}

/// Trains every algorithm with every seed (reusing finished runs in `settings.out`) and
/// collects the curves. `starting(algorithm, seed)` is called before each run that trains.
pub fn run(settings: &Settings, starting: &mut dyn FnMut(Algorithm, u64)) -> Result<Report> {
    settings.validate()?;
    std::fs::create_dir_all(&settings.out).map_err(|e| Error::io(&settings.out, e))?;
    let mut runs = Vec::new();
    for &algorithm in &settings.algorithms {
        let mut curves = Vec::new();
        for seed in 0..settings.seeds {
            let dir = settings
                .out
                .join(format!("{}-seed{seed}", algorithm.name()));
            if !dir.join(SUMMARY_FILE).exists() {
                starting(algorithm, seed);
                let config = settings.config(algorithm, seed)?;
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                }
                let mut run = Run::create(config, &dir)?;
                let outcome = run.train(&mut Silent, &AtomicBool::new(false))?;
                run.write_summary(&outcome, serde_json::json!({}))?;
                if let Outcome::Diverged(message) = outcome {
                    return Err(Error::Diverged(format!(
                        "{}, seed {seed}: {message}",
                        algorithm.name()
                    )));
                }
            }
            curves.push(curve(&dir)?);
        }
        runs.push(AlgorithmRuns { algorithm, curves });
    }
    let table = table(settings, &runs);
    Ok(Report { runs, table })
}

/// The test NLL curve of a finished run in `dir`.
pub fn curve(dir: &Path) -> Result<Curve> {
    let records = read_metrics(&dir.join(METRICS_FILE))?;
    let mut elapsed = 0.0;
    let mut time_at = std::collections::BTreeMap::new();
    for r in records.iter().filter(|r| r["split"] == "train") {
        elapsed += r["epoch_s"].as_f64().unwrap_or(0.0);
        time_at.insert(r["epoch"].as_u64().unwrap_or(0), elapsed);
    }
    Ok(records
        .iter()
        .filter(|r| r["split"] == "test")
        .filter_map(|r| {
            let epoch = r["epoch"].as_u64()?;
            Some(CurvePoint {
                epoch: epoch as f64,
                seconds: *time_at.get(&epoch)?,
                nll: r["nll_nats"].as_f64()?,
            })
        })
        .collect())
}

fn table(settings: &Settings, runs: &[AlgorithmRuns]) -> String {
    let mut table = format!(
        "| algorithm | test NLL after {} epochs (mean ± sd over {} seeds, K = {}) | training s per epoch |\n|---|---|---|\n",
        settings.epochs, settings.seeds, settings.k_eval
    );
    for r in runs {
        let (mean, sd) = r.final_nll();
        writeln!(
            table,
            "| {} | {mean:.2} ± {sd:.2} | {:.2} |",
            r.algorithm.name(),
            r.seconds_per_epoch()
        )
        .expect("writing to a String");
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed configs are the ones the comparison wrote as TOML before.
    #[test]
    fn typed_configs_match_their_toml_form() {
        let settings = Settings {
            data: DataSource::Digits,
            epochs: 3,
            seeds: 1,
            out: PathBuf::from("unused"),
            k_eval: 100,
            refresh_every: 50,
            lr: 0.02,
            algorithms: Algorithm::ALL.to_vec(),
            hidden: None,
            batch: None,
        };
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
        assert_eq!(settings.config(Algorithm::NrwsDiagonal, 2).unwrap(), parsed);
        let rws = settings.config(Algorithm::Rws, 0).unwrap();
        assert!(rws.train.natural.is_none() && rws.name == "rws-seed0");
    }
}
