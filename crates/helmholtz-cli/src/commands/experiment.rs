//! `helmholtz experiment nrws-vs-rws`: RWS, NRWS, diagonal NRWS, BiHM and NBiHM trained with the
//! same data, initialisation, batches and seeds; test NLL against epochs and against training
//! time, as PNG charts and a markdown table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use helmholtz::run::{Config, Run, Silent};

use crate::plots;

/// The compared algorithms: name and the config overrides that make them.
const ALGORITHMS: [(&str, &[&str]); 5] = [
    ("rws", &["train.algorithm=\"rws\""]),
    (
        "nrws",
        &[
            "train.algorithm=\"rws\"",
            "train.natural={ alpha = 0.2, refresh_every = REFRESH, fisher = \"blocks\" }",
        ],
    ),
    (
        "nrws-diagonal",
        &[
            "train.algorithm=\"rws\"",
            "train.natural={ alpha = 0.2, refresh_every = REFRESH, fisher = \"diagonal\" }",
        ],
    ),
    ("bihm", &["train.algorithm=\"bihm\""]),
    (
        "nbihm",
        &[
            "train.algorithm=\"bihm\"",
            "train.natural={ alpha = 0.2, refresh_every = REFRESH, fisher = \"blocks\" }",
        ],
    ),
];

/// Settings of the comparison (the arguments of `helmholtz experiment nrws-vs-rws`).
#[derive(clap::Args)]
pub struct Settings {
    /// digits, mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Epochs per run.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Number of seeds (0, 1, …).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Output directory (finished runs in it are reused).
    #[arg(long, default_value = "runs/nrws-vs-rws")]
    pub out: PathBuf,
    /// Importance samples of the per-epoch test estimate.
    #[arg(long, default_value_t = 100)]
    pub k_eval: usize,
    /// Fisher refresh cadence (steps).
    #[arg(long, default_value_t = 100)]
    pub refresh_every: u64,
    /// Learning rate of plain SGD, the same for every algorithm.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Only these algorithms (comma-separated: rws, nrws, nrws-diagonal, bihm, nbihm).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Hidden layer sizes, bottom to top (default 200,100,10; the NRWS paper's stack is
    /// 300,200,100,75,50,35,25,20,15,10,10).
    #[arg(long, value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Minibatch size (default 100; 32 in the NRWS journal configs).
    #[arg(long)]
    pub batch: Option<usize>,
}

fn base_config(settings: &Settings) -> String {
    let (source, hidden, batch) = match settings.data.as_str() {
        "digits" => ("digits", "[100, 50, 10]", 20),
        "mnist" => ("mnist", "[200, 100, 10]", 100),
        _ => ("fashion-mnist", "[200, 100, 10]", 100),
    };
    let hidden = if settings.hidden.is_empty() {
        hidden.to_string()
    } else {
        format!("{:?}", settings.hidden)
    };
    let batch = settings.batch.unwrap_or(batch);
    let epochs: Vec<String> = (1..=settings.epochs).map(|e| e.to_string()).collect();
    format!(
        r#"name = "nrws-vs-rws"
[data]
source = "{source}"
binarize = "fixed"
[model]
hidden = {hidden}
[train]
algorithm = "rws"
k = 10
batch_size = {batch}
epochs = {epochs}
[optimizer]
lr = {lr}
rule = {{ kind = "sgd" }}
[eval]
every = 0
test_at = [{test_at}]
test_k = {k_eval}
"#,
        epochs = settings.epochs,
        lr = settings.lr,
        test_at = epochs.join(", "),
        k_eval = settings.k_eval,
    )
}

/// One run's points: (epoch, cumulative training seconds, test NLL).
type Curve = Vec<(f64, f64, f64)>;

/// The test NLL curve of a finished run.
fn curve(dir: &Path) -> Result<Curve> {
    let records = helmholtz::run::read_metrics(&dir.join(helmholtz::run::METRICS_FILE))?;
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
            Some((epoch as f64, *time_at.get(&epoch)?, r["nll_nats"].as_f64()?))
        })
        .collect())
}

pub fn run(settings: Settings) -> Result<()> {
    if !["digits", "mnist", "fashion-mnist"].contains(&settings.data.as_str()) {
        bail!(
            "--data must be digits, mnist or fashion-mnist, got {}",
            settings.data
        );
    }
    if settings.epochs == 0 || settings.seeds == 0 || settings.batch == Some(0) {
        bail!("--epochs, --seeds and --batch must be at least 1");
    }
    if settings.hidden.contains(&0) {
        bail!(
            "--hidden sizes must be at least 1, got {:?}",
            settings.hidden
        );
    }
    let algorithms: Vec<_> = ALGORITHMS
        .iter()
        .filter(|(name, _)| settings.only.is_empty() || settings.only.iter().any(|o| o == name))
        .collect();
    if algorithms.is_empty() {
        bail!("--only names none of rws, nrws, nrws-diagonal, bihm, nbihm");
    }
    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("creating {}", settings.out.display()))?;
    let text = base_config(&settings);
    let mut results = Vec::new();
    for (name, overrides) in &algorithms {
        let mut curves = Vec::new();
        for seed in 0..settings.seeds {
            let dir = settings.out.join(format!("{name}-seed{seed}"));
            let mut all: Vec<String> = overrides
                .iter()
                .map(|o| o.replace("REFRESH", &settings.refresh_every.to_string()))
                .collect();
            all.push(format!("seed={seed}"));
            all.push(format!("name=\"{name}-seed{seed}\""));
            if !dir.join(helmholtz::run::SUMMARY_FILE).exists() {
                crate::out!("training {name}, seed {seed} ({} epochs)", settings.epochs);
                let config = Config::parse(&text, &all, Path::new("nrws-vs-rws"))?;
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing the unfinished {}", dir.display()))?;
                }
                let mut run = Run::create(config, &dir)?;
                let outcome = run.train(&mut Silent, &AtomicBool::new(false))?;
                run.write_summary(&outcome, serde_json::json!({}))?;
                if let helmholtz::run::Outcome::Diverged(message) = outcome {
                    anyhow::bail!("{name}, seed {seed} diverged: {message}");
                }
            }
            curves.push(curve(&dir)?);
        }
        results.push((name.to_string(), curves));
    }
    write_report(&settings, &results)
}

fn mean_curve(curves: &[Curve]) -> Curve {
    let len = curves.iter().map(Vec::len).min().unwrap_or(0);
    (0..len)
        .map(|i| {
            let n = curves.len() as f64;
            let sum = curves.iter().fold((0.0, 0.0, 0.0), |acc, c| {
                (acc.0 + c[i].0, acc.1 + c[i].1, acc.2 + c[i].2)
            });
            (sum.0 / n, sum.1 / n, sum.2 / n)
        })
        .collect()
}

fn write_report(settings: &Settings, results: &[(String, Vec<Curve>)]) -> Result<()> {
    let by = |x: fn(&(f64, f64, f64)) -> f64| -> Vec<plots::Series> {
        results
            .iter()
            .map(|(name, curves)| plots::Series {
                label: name.clone(),
                points: mean_curve(curves).iter().map(|p| (x(p), p.2)).collect(),
            })
            .collect()
    };
    let title = format!(
        "{}: test NLL (K = {}), mean of {} seeds",
        settings.data, settings.k_eval, settings.seeds
    );
    plots::line_chart(
        &by(|p| p.0),
        &title,
        "epoch",
        "test NLL (nats)",
        &settings.out.join("test_nll_vs_epoch.png"),
    )?;
    plots::line_chart(
        &by(|p| p.1),
        &title,
        "training time (s)",
        "test NLL (nats)",
        &settings.out.join("test_nll_vs_time.png"),
    )?;
    let mut table = format!(
        "| algorithm | test NLL after {} epochs (mean ± sd over {} seeds, K = {}) | training s per epoch |\n|---|---|---|\n",
        settings.epochs, settings.seeds, settings.k_eval
    );
    for (name, curves) in results {
        let finals: Vec<f64> = curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.2))
            .collect();
        let mean = finals.iter().sum::<f64>() / finals.len().max(1) as f64;
        let sd = (finals.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / (finals.len().max(2) - 1) as f64)
            .sqrt();
        let per_epoch: Vec<f64> = curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.1 / p.0))
            .collect();
        let time = per_epoch.iter().sum::<f64>() / per_epoch.len().max(1) as f64;
        writeln!(table, "| {name} | {mean:.2} ± {sd:.2} | {time:.2} |")
            .expect("writing to a String");
    }
    let path = settings.out.join("results.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{table}");
    crate::out!(
        "wrote {}, test_nll_vs_epoch.png, test_nll_vs_time.png",
        path.display()
    );
    Ok(())
}
