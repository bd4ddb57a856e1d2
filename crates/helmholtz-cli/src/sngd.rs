//! `helmholtz experiment sngd-nb`: the negative-binomial MLE task of the SNGD paper — SNGD with
//! the Gamma surrogate against BFGS, natural gradient with a Monte Carlo Fisher and GD, 20 random starts, a markdown table and plots of the
//! NLL gap against iterations and time.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use helmholtz::run::sngd::{NbMethod, iterations_to, nb_data, nb_inits, nb_optimum, run_nb};

use crate::plots::{Series, line_chart};

/// Settings of `helmholtz experiment sngd-nb`.
#[derive(clap::Args)]
pub struct NbSettings {
    /// Output directory.
    #[arg(long, default_value = "runs/sngd-nb")]
    pub out: PathBuf,
    /// Number of counts.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Random starting points.
    #[arg(long, default_value_t = 20)]
    pub inits: usize,
    /// Iterations per run.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Seed of the data and the starts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

const METHODS: [NbMethod; 4] = [
    NbMethod::Sngd,
    NbMethod::Bfgs,
    NbMethod::NgdMonteCarlo,
    NbMethod::Gd,
];
const TOL: f64 = 1e-6;
/// Runs stop once this close to the optimum (well inside the reported tolerance).
const STOP: f64 = 1e-10;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        f64::NAN
    } else {
        values[values.len() / 2]
    }
}

pub fn run_nb_experiment(settings: NbSettings) -> Result<()> {
    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("creating {}", settings.out.display()))?;
    let counts = nb_data(settings.n, settings.seed)?;
    let optimum = nb_optimum(&counts)?;
    let (mean, var) = counts.moments();
    let inits = nb_inits(settings.inits, settings.seed);
    let mut table = format!(
        "# SNGD on the negative-binomial MLE task\n\n{} counts from NB(5, 1/11) (sample mean {mean:.3}, variance {var:.2}), optimal mean NLL {optimum:.10}, {} random starts, {} iterations, 1000-point grid line search for every method; a run stops once within 1e-10 of the optimum.\n\n| method | iterations to within 1e-6: median | worst | not reached | median seconds to reach | runs ended by an invalid step |\n|---|---|---|---|---|---|\n",
        settings.n, settings.inits, settings.iterations
    );
    let mut first = Vec::new();
    for method in METHODS {
        let mut reached = Vec::new();
        let mut times = Vec::new();
        let mut missed = 0;
        let mut ended = 0;
        for (k, &init) in inits.iter().enumerate() {
            let trace = run_nb(
                &counts,
                method,
                init,
                settings.iterations,
                Some(optimum + STOP),
            )?;
            ended += usize::from(trace.stopped.is_some());
            match iterations_to(&trace, optimum, TOL) {
                Some(i) => {
                    reached.push(i as f64);
                    times.push(trace.seconds[i]);
                }
                None => missed += 1,
            }
            if k == 0 {
                first.push(trace);
            }
        }
        let worst = reached.iter().copied().fold(f64::NAN, f64::max);
        writeln!(
            table,
            "| {} | {} | {} | {missed}/{} | {:.4} | {ended}/{} |",
            method.name(),
            median(&mut reached.clone()),
            worst,
            settings.inits,
            median(&mut times),
            settings.inits
        )?;
    }
    let gap = |v: f64| (v - optimum).max(1e-16).log10();
    for (x_label, file, by_time) in [
        ("iteration", "nll-by-iteration.png", false),
        ("seconds", "nll-by-time.png", true),
    ] {
        let series: Vec<Series> = first
            .iter()
            .map(|trace| Series {
                label: trace.method.name().into(),
                points: trace
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (if by_time { trace.seconds[i] } else { i as f64 }, gap(v)))
                    .collect(),
            })
            .collect();
        line_chart(
            &series,
            "negative binomial MLE, first start",
            x_label,
            "log10(NLL − optimum)",
            &settings.out.join(file),
        )?;
    }
    let path = settings.out.join("summary.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    print!("{table}");
    println!("wrote {}", settings.out.display());
    Ok(())
}
