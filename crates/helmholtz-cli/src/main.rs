//! `helmholtz`: train, evaluate and inspect Helmholtz machines from the command line.
//!
//! A thin shell around the `helmholtz` library: argument parsing, progress bars, plots.

mod commands;
mod output;
mod plots;
mod signals;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{
    RunArgs, bench, data, eval, experiment, fisher_rao, fit, mle, plot, sample, sngd, sparse,
    train, vi,
};
use helmholtz::run::{Slot, Split};

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
        #[command(flatten)]
        args: RunArgs,
    },
    /// Estimate the log-likelihood of a trained run by importance sampling.
    Eval {
        /// The run directory.
        run: PathBuf,
        /// Importance samples per data point.
        #[arg(long, default_value_t = 1000, value_parser = commands::count::<usize>)]
        k: usize,
        /// Which split.
        #[arg(long, value_enum, default_value_t = SplitArg::Test)]
        split: SplitArg,
        /// Evaluate only the first N points.
        #[arg(long, value_parser = commands::count::<usize>)]
        points: Option<usize>,
        /// Print the ELBO and its entropy decomposition instead (fit runs: on their training
        /// points; Helmholtz machines: Monte Carlo over q with --samples draws per point).
        #[arg(long)]
        entropy: bool,
        /// q samples per point for --entropy on Helmholtz machines.
        #[arg(long, default_value_t = 100, value_parser = commands::count::<usize>)]
        samples: usize,
        /// Which checkpoint: the last one, or the best by validation.
        #[arg(long, value_enum, default_value_t = CheckpointArg::Last)]
        checkpoint: CheckpointArg,
        /// Evaluate the points of this file instead of a split, read as the run read its data
        /// (format, header, delimiter, label column, scale; binarised as its test split, or
        /// mapped by a fit's stored transform).
        #[arg(long, conflicts_with_all = ["split", "entropy"])]
        data: Option<PathBuf>,
    },
    /// Fit a model of the ELBO = entropy-sum identity from a TOML config (ppca, factor-analysis,
    /// gmm-diagonal, gmm-full, bernoulli-mixture, sbn-exact, vae-1, vae-2, vae-3), logging the
    /// ELBO, the entropy sum and their gap.
    Fit {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Variational inference for Bayesian logistic regression on your data (CSV/TSV/NPY/NPZ):
    /// a Gaussian prior, a Gaussian, skew-normal, skew-t or skew-normal-mixture posterior fitted
    /// by SNGD, Adam or MCEF; prints the posterior summary (see docs/VI.md).
    Vi {
        #[command(flatten)]
        args: RunArgs,
    },
    /// Draw samples from a trained model and save them as an image grid (a vi run: posterior
    /// draws as CSV, one column per feature).
    Sample {
        /// The run directory.
        run: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// Output PNG for a Helmholtz machine; .csv for a vi run (posterior draws); .csv or .npy
        /// for an mle run (not overwritten unless --force).
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Seed of the samples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Fit a distribution to a data file by maximum likelihood (negative-binomial, nb-mixture,
    /// skew-normal, skew-t, t-copula) with surrogate natural gradient descent or a baseline, from
    /// a TOML config (see configs/mle-nb.toml and docs/MLE.md), or resume such a run.
    Mle {
        #[command(flatten)]
        args: RunArgs,
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
    /// several seeds: on bars (L-BFGS, with the ground-truth reference and a recovery score), on
    /// natural-image patches (EM with per-point posteriors, or Adam with an amortized encoder;
    /// held-out ELBO, Gini sparseness, atoms ordered by λ), or on your own points
    /// (`data.source = "points"`: L-BFGS, EM or Adam).
    Sparse {
        #[command(flatten)]
        args: RunArgs,
        /// Number of seeds, starting at the config's seed (one run directory per seed inside
        /// the output directory).
        #[arg(long, default_value_t = 1, value_parser = commands::count::<u64>)]
        seeds: u64,
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
        #[arg(long, default_value_t = 4, value_parser = commands::count::<usize>)]
        stride: usize,
        /// Seed of the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Measure RWS training throughput and where the time goes; on a sparse-coding bars config,
    /// the cost of one objective-and-gradient evaluation and of one L-BFGS push and direction.
    Bench {
        /// Config whose model and data to use (default: the built-in configs/mnist-rws.toml if
        /// MNIST is present, else the built-in configs/quickstart.toml).
        config: Option<PathBuf>,
        /// Batches to time (bars: evaluations to time).
        #[arg(long, default_value_t = 50, value_parser = commands::count::<usize>)]
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
pub enum DataAction {
    /// Download and verify a data set into the data directory ($HELMHOLTZ_DATA, else the
    /// nearest data/ folder holding a data set, else ./data) and say where it went.
    Fetch {
        /// mnist, fashion-mnist, natural (images for sparse-coding patches) or all.
        #[arg(default_value = "all")]
        which: String,
    },
    /// List the data sets and whether they are present.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CheckpointArg {
    Last,
    Best,
}

impl From<CheckpointArg> for Slot {
    fn from(c: CheckpointArg) -> Slot {
        match c {
            CheckpointArg::Last => Slot::Last,
            CheckpointArg::Best => Slot::Best,
        }
    }
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A bad value of a known flag (a count of 0, a word for a number) is an error like
        // any other bad input (exit 1); help, version and usage errors keep clap's codes.
        Err(err) if err.kind() == clap::error::ErrorKind::ValueValidation => {
            let _ = err.print();
            std::process::exit(1);
        }
        Err(err) => err.exit(),
    };
    let code = match run(cli) {
        Ok(()) => 0,
        Err(err) => match err.downcast_ref::<commands::ExitCode>() {
            Some(code) => code.0,
            None => {
                err!("error: {}", message(&err));
                1
            }
        },
    };
    std::process::exit(code);
}

/// An error and its causes on one line, each said once: a cause whose text the message already
/// holds (library errors that name their source) is not repeated.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train { args } => train::run(&args),
        Command::Eval {
            run,
            k,
            points,
            checkpoint,
            data: Some(file),
            ..
        } => eval::file(&run, &file, k, points, checkpoint.into()),
        Command::Eval {
            run,
            k,
            split,
            points,
            entropy,
            samples,
            checkpoint,
            data: None,
        } => {
            if helmholtz::run::mle::is_mle_run(&run) {
                anyhow::bail!(
                    "{} is an mle run: give the file to evaluate with --data FILE (its training and test NLLs are in its summary.json)",
                    run.display()
                );
            }
            if entropy {
                fit::entropy(&run, split.into(), samples, points)
            } else {
                eval::run(&run, k, split.into(), points, checkpoint.into())
            }
        }
        Command::Fit { args } => fit::run(&args),
        Command::Vi { args } => vi::run(&args),
        Command::Mle { args } => mle::run(&args),
        Command::Sample {
            run,
            n,
            output,
            seed,
            force,
        } => {
            if helmholtz::run::mle::is_mle_run(&run) {
                mle::sample(&run, n, seed, &output, force)
            } else {
                sample::run(&run, n, seed, &output, force)
            }
        }
        Command::Plot {
            runs,
            output,
            metric,
        } => plot::run(&runs, &metric, &output),
        Command::Data { action } => data::run(action),
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
        Command::Sparse { args, seeds } => sparse::run(&args, seeds),
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
