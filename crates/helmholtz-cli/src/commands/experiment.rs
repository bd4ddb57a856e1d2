//! `helmholtz experiment nrws-vs-rws`: RWS, NRWS, diagonal NRWS, BiHM and NBiHM trained with the
//! same data, initialisation, batches and seeds (`helmholtz_experiments::nrws_vs_rws`); test NLL
//! against epochs and against training time, as PNG charts and a markdown table.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use helmholtz::run::config::DataSource;
use helmholtz_experiments::nrws_vs_rws::{self, Algorithm, AlgorithmRuns, CurvePoint, Report};

use crate::plots;

/// Settings of the comparison (the arguments of `helmholtz experiment nrws-vs-rws`).
#[derive(clap::Args)]
pub struct Settings {
    /// digits, mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub data: String,
    /// Epochs per run.
    #[arg(long, default_value_t = 20, value_parser = super::count::<usize>)]
    pub epochs: usize,
    /// Number of seeds (0, 1, …).
    #[arg(long, default_value_t = 3, value_parser = super::count::<u64>)]
    pub seeds: u64,
    /// Output directory (finished runs in it are reused).
    #[arg(long, default_value = "runs/nrws-vs-rws")]
    pub out: PathBuf,
    /// Importance samples of the per-epoch test estimate.
    #[arg(long, default_value_t = 100, value_parser = super::count::<usize>)]
    pub k_eval: usize,
    /// Fisher refresh cadence (steps).
    #[arg(long, default_value_t = 100, value_parser = super::count::<u64>)]
    pub refresh_every: u64,
    /// Learning rate of plain SGD, the same for every algorithm.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Only these algorithms (comma-separated: rws, nrws, nrws-diagonal, bihm, nbihm).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Hidden layer sizes, bottom to top (default 200,100,10; the NRWS paper's stack is
    /// 300,200,100,75,50,35,25,20,15,10,10).
    #[arg(long, value_delimiter = ',', value_parser = super::count::<usize>)]
    pub hidden: Vec<usize>,
    /// Minibatch size (default 100; 32 in the NRWS journal configs).
    #[arg(long, value_parser = super::count::<usize>)]
    pub batch: Option<usize>,
}

pub fn run(settings: Settings) -> Result<()> {
    let data = match settings.data.as_str() {
        "digits" => DataSource::Digits,
        "mnist" => DataSource::Mnist,
        "fashion-mnist" => DataSource::FashionMnist,
        other => bail!("--data must be digits, mnist or fashion-mnist, got {other}"),
    };
    let algorithms = Algorithm::ALL
        .into_iter()
        .filter(|a| settings.only.is_empty() || settings.only.iter().any(|o| o == a.name()))
        .collect();
    let experiment = nrws_vs_rws::Settings {
        data,
        epochs: settings.epochs,
        seeds: settings.seeds,
        out: settings.out.clone(),
        k_eval: settings.k_eval,
        refresh_every: settings.refresh_every,
        lr: settings.lr,
        algorithms,
        hidden: (!settings.hidden.is_empty()).then(|| settings.hidden.clone()),
        batch: settings.batch,
    };
    let report = nrws_vs_rws::run(&experiment, &mut |algorithm, seed| {
        crate::out!(
            "training {}, seed {seed} ({} epochs)",
            algorithm.name(),
            settings.epochs
        );
    })?;
    write_report(&settings, &report)
}

fn write_report(settings: &Settings, report: &Report) -> Result<()> {
    let by = |x: fn(&CurvePoint) -> f64| -> Vec<plots::Series> {
        report
            .runs
            .iter()
            .map(|runs: &AlgorithmRuns| plots::Series {
                label: runs.algorithm.name().to_string(),
                points: runs.mean_curve().iter().map(|p| (x(p), p.nll)).collect(),
            })
            .collect()
    };
    let title = format!(
        "{}: test NLL (K = {}), mean of {} seeds",
        settings.data, settings.k_eval, settings.seeds
    );
    plots::line_chart(
        &by(|p| p.epoch),
        &title,
        "epoch",
        "test NLL (nats)",
        &settings.out.join("test_nll_vs_epoch.png"),
    )?;
    plots::line_chart(
        &by(|p| p.seconds),
        &title,
        "training time (s)",
        "test NLL (nats)",
        &settings.out.join("test_nll_vs_time.png"),
    )?;
    let path = settings.out.join("results.md");
    std::fs::write(&path, &report.table).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{}", report.table);
    crate::out!(
        "wrote {}, test_nll_vs_epoch.png, test_nll_vs_time.png",
        path.display()
    );
    Ok(())
}
