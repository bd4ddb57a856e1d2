//! `helmholtz train`: train a Helmholtz machine from a config, or resume a run.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use helmholtz::models::HelmholtzMachine;
use helmholtz::run::{Config, EpochRecord, Observer, Outcome, Run, StepRecord, TrainState};
use indicatif::{ProgressBar, ProgressStyle};

use super::{ExitCode, RunArgs};
use crate::signals::Stop;
use crate::{out, plots};

/// Progress: a bar per epoch on a terminal, plain lines otherwise, nothing when quiet.
pub struct Progress {
    quiet: bool,
    terminal: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress for stdout as it is.
    pub fn new(quiet: bool) -> Self {
        Progress {
            quiet,
            terminal: std::io::stdout().is_terminal(),
            bar: None,
        }
    }

    fn say(&mut self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => out!("{text}"),
        }
    }
}

impl Observer<HelmholtzMachine> for Progress {
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

    fn on_step(&mut self, info: &StepRecord, _: &TrainState) -> helmholtz::run::Control {
        if let Some(bar) = &self.bar {
            bar.set_position(info.batch as u64 + 1);
            bar.set_message(format!(
                "bound {:.2}  {:.0} pts/s",
                info.bound_mean, info.points_per_s
            ));
        }
        helmholtz::run::Control::Continue
    }

    fn on_epoch(
        &mut self,
        _: &HelmholtzMachine,
        record: &mut EpochRecord,
        _: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> helmholtz::Result<helmholtz::run::Control> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            let mut line = format!(
                "epoch {:>4}  bound {:>9.3}  {:>6.2} s  {:>7.0} pts/s",
                record.epoch,
                record.number("bound").unwrap_or(f64::NAN),
                record.epoch_s,
                record.points_per_s
            );
            if let Some(ll) = record.number("valid_ll") {
                line += &format!(
                    "  valid LL {ll:.3} (K = {})",
                    record.fields.get("valid_k").cloned().unwrap_or_default()
                );
            }
            if let Some(kl) = record.number("kl_true_model") {
                line += &format!("  KL(true‖model) {kl:.4}");
            }
            out!("{line}");
        }
        Ok(helmholtz::run::Control::Continue)
    }

    fn message(&mut self, text: &str) {
        self.say(text);
    }
}

/// `helmholtz train CONFIG` or `helmholtz train --resume RUN`.
pub fn run(args: &RunArgs) -> Result<()> {
    let quiet = args.quiet;
    let mut run = match (&args.config, &args.resume) {
        (_, Some(dir)) => {
            let run = Run::resume(dir, &args.overrides)
                .with_context(|| format!("resuming {}", dir.display()))?;
            if !quiet {
                out!(
                    "resuming {} at epoch {}, batch {}",
                    dir.display(),
                    run.state.epoch + 1,
                    run.state.batch
                );
                for change in &run.changes {
                    out!("  changed by --set: {change}");
                }
            }
            run
        }
        (Some(path), None) => {
            let config = Config::load(path, &args.overrides)?;
            let dir = args.out_dir(&config.name);
            if !quiet {
                out!("training {} into {}", config.name, dir.display());
                for note in helmholtz::run::data::header_notes(&config.data) {
                    out!("{note}");
                }
            }
            Run::create(config, &dir)?
        }
        (None, None) => bail!("give a config file to train, or --resume RUN"),
    };
    if !quiet {
        out!(
            "model {:?}: {} parameters; {} training points, {} batches per epoch",
            run.model.sizes,
            run.model.params.n_scalars(),
            run.data.train.n_samples(),
            run.n_batches()
        );
    }
    let stop = Stop::install(run.dir.path().to_path_buf())?;
    let mut progress = Progress::new(quiet);
    let step_before = run.state.step;
    let had_summary = run.dir.join(helmholtz::run::SUMMARY_FILE).exists();
    let outcome = match run.train(&mut progress, &stop.flag) {
        Ok(outcome) => outcome,
        Err(err) => {
            // Plots of what was learned so far still help to see what went wrong.
            let _ = write_plots(&run);
            return Err(err).with_context(|| format!("training {}", run.dir.path().display()));
        }
    };
    let dir = run.dir.path().to_path_buf();
    let stepped = run.state.step != step_before;
    run.finish(&outcome, stepped || !had_summary, &mut |line| {
        progress.message(line)
    })?;
    match &outcome {
        Outcome::Interrupted => {
            write_plots(&run)?;
            out!(
                "interrupted; the checkpoint holds epoch {}, batch {}; continue with: helmholtz train --resume {}",
                run.state.epoch + 1,
                run.state.batch,
                dir.display()
            );
            return Err(ExitCode(stop.exit_code()).into());
        }
        Outcome::Diverged(message) => {
            let _ = write_plots(&run);
            bail!(
                "training {} diverged: {message}; `helmholtz eval {}` uses the last good checkpoint (--checkpoint best: the best validated one)",
                dir.display(),
                dir.display()
            );
        }
        Outcome::Completed | Outcome::EarlyStopped => {}
    }
    if !stepped && had_summary {
        if !quiet {
            let (how, raise) = match run.config.eval.patience {
                Some(p) if run.state.stopped_early => (
                    format!("stopped early (eval.patience = {p})"),
                    if run.state.epoch < run.config.train.epochs {
                        format!("raise eval.patience above {p}")
                    } else {
                        format!("raise eval.patience above {p} and train.epochs")
                    },
                ),
                _ => (
                    "had already finished".to_string(),
                    "raise train.epochs".to_string(),
                ),
            };
            out!(
                "{} {how} at epoch {}; nothing to do ({raise} with --set to continue)",
                dir.display(),
                run.state.epoch
            );
        }
        return Ok(());
    }
    write_plots(&run)?;
    if !quiet {
        out!("done: {}", dir.display());
    }
    Ok(())
}

/// Learning curve, samples and first-layer receptive fields into RUN/plots/.
pub fn write_plots(run: &Run) -> Result<()> {
    let dir = run.dir.join("plots");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let records = helmholtz::run::read_metrics(&run.dir.join(helmholtz::run::METRICS_FILE))
        .unwrap_or_default();
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
    super::sample::write_samples(run, 64, 0, &dir.join("samples.png"))?;
    let (h, w) = super::sample::image_shape(run);
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
        super::sample::scale_for(h),
        &dir.join("receptive_fields.png"),
    )
}
