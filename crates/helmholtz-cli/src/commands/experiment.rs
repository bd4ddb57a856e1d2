//! `helmholtz experiment nrws-vs-rws`: RWS, NRWS, diagonal NRWS, BiHM and NBiHM, each with its
//! own optimizer and learning rate, or the arms of protocol configs (`--protocol`), trained with
//! the same data, initialisation, batches and seeds (`helmholtz_experiments::nrws_vs_rws`);
//! test NLL against epochs and against training time, as PNG charts and markdown tables. An
//! interrupted comparison continues where it stopped when the same command runs again.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use helmholtz::models::HelmholtzMachine;
use helmholtz::optim::OptimizerConfig;
use helmholtz::run::Observer;
use helmholtz::run::config::DataSource;
use helmholtz_experiments::nrws_vs_rws::{
    self, Algorithm, AlgorithmSettings, ArmRuns, CurvePoint, Finish, Report,
};

use super::ExitCode;
use crate::plots;
use crate::signals::Stop;

/// Settings of the comparison (the arguments of `helmholtz experiment nrws-vs-rws`).
#[derive(clap::Args)]
pub struct Settings {
    /// digits, mnist or fashion-mnist (default mnist; with --protocol it replaces each
    /// protocol's data.source).
    #[arg(long)]
    pub data: Option<String>,
    /// Epochs per run (default 20; with --protocol, each protocol's train.epochs).
    #[arg(long, value_parser = super::count::<usize>)]
    pub epochs: Option<usize>,
    /// Number of seeds (0, 1, …; with --first-seed S: S, S + 1, …).
    #[arg(long, default_value_t = 3, value_parser = super::count::<u64>)]
    pub seeds: u64,
    /// The first seed: --first-seed 2 --seeds 1 trains seed 2 alone, e.g. in a second process
    /// into the same --out, where a later report over --seeds 3 reuses it.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Output directory: finished runs in it are reused, interrupted ones resumed.
    #[arg(long, default_value = "runs/nrws-vs-rws")]
    pub out: PathBuf,
    /// Importance samples of the per-epoch test estimate (default 100; with --protocol, each
    /// protocol's eval.test_k, else eval.k).
    #[arg(long, value_parser = super::count::<usize>)]
    pub k_eval: Option<usize>,
    /// A protocol config (TOML, e.g. configs/compare/rws-adam.toml): one arm, named by its
    /// `name`. Repeatable; replaces --only, --optimizer, --lr, --refresh-every, --hidden and
    /// --batch.
    #[arg(long = "protocol", value_name = "CONFIG")]
    pub protocols: Vec<PathBuf>,
    /// With --protocol: override a value of every protocol, e.g. --set train.batch_size=32, or
    /// of the arm LABEL only, e.g. --set nbihm-adam:eval.patience=1000.
    #[arg(long = "set", value_name = "[LABEL:]KEY=VALUE", requires = "protocols")]
    pub overrides: Vec<String>,
    /// Fisher refresh cadence (steps).
    #[arg(long, default_value_t = 100, value_parser = super::count::<u64>)]
    pub refresh_every: u64,
    /// Learning rate: one for every algorithm (0.02), or per algorithm, e.g.
    /// 0.002,rws=0.001,bihm=0.001 (an entry without a name sets the others).
    #[arg(long, default_value = "0.02")]
    pub lr: String,
    /// Optimizer rule (sgd, momentum, adam, nadam; the natural versions feed their natural
    /// gradient to it): one for every algorithm, or per algorithm, e.g. sgd,rws=adam,bihm=adam.
    #[arg(long, default_value = "sgd")]
    pub optimizer: String,
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
    /// Seconds per epoch of arms timed side by side (scripts/bench-compare.sh), e.g.
    /// rws-adam=14.05,nrws-nadam=27.29: the time axis of those arms is the epoch times this,
    /// for every seed, instead of each run's median epoch time.
    #[arg(long, value_name = "LABEL=SECONDS,...")]
    pub epoch_seconds: Option<String>,
    /// Estimate the test NLL after every N-th epoch and after the last (default: after every
    /// epoch); for long runs, whose estimates would otherwise take a fifth of the time.
    #[arg(long, value_name = "N", value_parser = super::count::<usize>)]
    pub test_every: Option<usize>,
}

/// The arms and seconds of `--epoch-seconds`: LABEL=SECONDS entries separated by commas.
fn epoch_seconds(text: &str) -> Result<Vec<(String, f64)>> {
    text.split(',')
        .map(|entry| {
            let (label, seconds) = entry.split_once('=').with_context(|| {
                format!(
                    "--epoch-seconds takes LABEL=SECONDS entries separated by commas, got {entry:?}"
                )
            })?;
            let seconds: f64 = seconds.trim().parse().with_context(|| {
                format!("--epoch-seconds: {label}={seconds} is not a number of seconds")
            })?;
            Ok((label.trim().to_string(), seconds))
        })
        .collect()
}

fn data_source(name: &str) -> Result<DataSource> {
    Ok(match name {
        "digits" => DataSource::Digits,
        "mnist" => DataSource::Mnist,
        "fashion-mnist" => DataSource::FashionMnist,
        other => bail!("--data must be digits, mnist or fashion-mnist, got {other}"),
    })
}

fn algorithm(name: &str, option: &str) -> Result<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .find(|a| a.name() == name)
        .with_context(|| {
            format!(
                "{option}: {name:?} is no algorithm; give rws, nrws, nrws-diagonal, bihm or nbihm"
            )
        })
}

/// "VALUE,ALG=VALUE,…": the value for the algorithms not named (or `default`) and the named ones.
fn per_algorithm<T>(
    text: &str,
    option: &str,
    default: T,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<(T, Vec<(Algorithm, T)>)> {
    let mut all = default;
    let mut named = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('=') {
            Some((name, value)) => {
                named.push((algorithm(name.trim(), option)?, parse(value.trim())?))
            }
            None => all = parse(entry)?,
        }
    }
    Ok((all, named))
}

fn learning_rate(text: &str) -> Result<f64> {
    match text.parse::<f64>() {
        Ok(lr) if lr.is_finite() && lr > 0.0 => Ok(lr),
        _ => bail!("--lr: {text:?} is not accepted: give a positive learning rate such as 0.001"),
    }
}

fn rule(text: &str) -> Result<OptimizerConfig> {
    if !["sgd", "momentum", "adam", "nadam"].contains(&text) {
        bail!("--optimizer: {text:?} is not accepted: give sgd, momentum, adam or nadam");
    }
    serde_json::from_value(serde_json::json!({ "kind": text }))
        .with_context(|| format!("--optimizer {text}"))
}

/// What the comparison prints while it trains: a line per run, and the run's epochs.
struct Printed<'a> {
    progress: super::train::Progress,
    stop: &'a Stop,
}

impl nrws_vs_rws::Progress for Printed<'_> {
    fn starting(
        &mut self,
        dir: &std::path::Path,
        label: &str,
        _: u64,
        epochs: usize,
        resumed_at: Option<usize>,
    ) {
        // A second signal reports this run's last checkpoint.
        self.stop.watch(dir.to_path_buf());
        match resumed_at {
            Some(epoch) => crate::out!("resuming {label} after epoch {epoch} (to {epochs} epochs)"),
            None => crate::out!("training {label} ({epochs} epochs)"),
        }
    }

    fn observer(&mut self) -> &mut dyn Observer<HelmholtzMachine> {
        &mut self.progress
    }

    fn say(&mut self, line: &str) {
        crate::out!("{line}");
    }
}

pub fn run(settings: Settings) -> Result<()> {
    let experiment = if settings.protocols.is_empty() {
        let data = data_source(settings.data.as_deref().unwrap_or("mnist"))?;
        let algorithms = settings
            .only
            .iter()
            .map(|name| algorithm(name, "--only"))
            .collect::<Result<Vec<_>>>()?;
        let (lr, lrs) = per_algorithm(&settings.lr, "--lr", 0.02, learning_rate)?;
        let (rule, rules) = per_algorithm(
            &settings.optimizer,
            "--optimizer",
            OptimizerConfig::Sgd,
            rule,
        )?;
        let algorithms = AlgorithmSettings {
            data,
            epochs: settings.epochs.unwrap_or(20),
            k_eval: settings.k_eval.unwrap_or(100),
            refresh_every: settings.refresh_every,
            lr,
            lrs,
            rule,
            rules,
            algorithms: if algorithms.is_empty() {
                Algorithm::ALL.to_vec()
            } else {
                Algorithm::ALL
                    .into_iter()
                    .filter(|a| algorithms.contains(a))
                    .collect()
            },
            hidden: (!settings.hidden.is_empty()).then(|| settings.hidden.clone()),
            batch: settings.batch,
        };
        nrws_vs_rws::Settings::from_algorithms(&algorithms, settings.seeds, settings.out.clone())?
    } else {
        if !settings.only.is_empty()
            || !settings.hidden.is_empty()
            || settings.batch.is_some()
            || settings.lr != "0.02"
            || settings.optimizer != "sgd"
            || settings.refresh_every != 100
        {
            bail!(
                "--protocol takes the algorithm, optimizer, learning rate, layers, batch and refresh cadence from its config: drop --only, --optimizer, --lr, --hidden, --batch and --refresh-every, or change them with --set KEY=VALUE"
            );
        }
        let mut overrides = settings.overrides.clone();
        if let Some(name) = &settings.data {
            data_source(name)?;
            overrides.push(format!("data.source=\"{name}\""));
        }
        nrws_vs_rws::Settings::from_protocols(
            &settings.protocols,
            &overrides,
            settings.epochs,
            settings.k_eval,
            settings.seeds,
            settings.out.clone(),
        )?
    };
    let experiment = match &settings.epoch_seconds {
        Some(text) => experiment.with_epoch_seconds(epoch_seconds(text)?)?,
        None => experiment,
    };
    let experiment = experiment.with_first_seed(settings.first_seed)?;
    let experiment = match settings.test_every {
        Some(every) => experiment.with_test_every(every)?,
        None => experiment,
    };
    let stop = Stop::install(settings.out.clone())?;
    let mut printed = Printed {
        progress: super::train::Progress::new(false),
        stop: &stop,
    };
    match nrws_vs_rws::run(&experiment, &mut printed, &stop.flag)? {
        Finish::Done(report) => write_report(&settings, &experiment, &report),
        Finish::Interrupted(dir) => {
            crate::out!(
                "interrupted; {} keeps its last checkpoint: run the same command again to continue",
                dir.display()
            );
            Err(ExitCode(stop.exit_code()).into())
        }
    }
}

fn write_report(
    settings: &Settings,
    experiment: &nrws_vs_rws::Settings,
    report: &Report,
) -> Result<()> {
    let by = |x: fn(&CurvePoint) -> f64| -> Vec<plots::Series> {
        report
            .runs
            .iter()
            .map(|runs: &ArmRuns| plots::Series {
                label: runs.label.clone(),
                points: runs.mean_curve().iter().map(|p| (x(p), p.nll)).collect(),
            })
            .collect()
    };
    let first = &experiment.arms[0].config;
    let seeds = match (settings.first_seed, settings.seeds) {
        (0, 1) => "one seed".to_string(),
        (0, n) => format!("mean of {n} seeds"),
        (s, 1) => format!("seed {s}"),
        (s, n) => format!("mean of seeds {s}–{}", s + n - 1),
    };
    let title = format!(
        "{}: test NLL (K = {}), {seeds}",
        match first.data.source {
            DataSource::Digits => "digits",
            DataSource::FashionMnist => "fashion-mnist",
            _ => "mnist",
        },
        first.eval.test_k.unwrap_or(first.eval.k),
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
