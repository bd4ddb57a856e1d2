//! `helmholtz sparse`: the bars experiment of the entropy-based sparse-coding paper over seeds,
//! with the learned atoms drawn and a markdown table of the outcomes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use helmholtz::run::sparse::{RECOVERY_COSINE, SparseConfig, run_bars};

use crate::plots;

pub fn run(
    config_path: &Path,
    seeds: u64,
    out: Option<PathBuf>,
    overrides: &[String],
    quiet: bool,
) -> Result<()> {
    if seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let config = SparseConfig::load(config_path, overrides)?;
    let out = out.unwrap_or_else(|| Path::new("runs").join(&config.name));
    let mut table = String::from(
        "| seed | L^H per point | ground truth (q re-optimised) | learned − truth | bars recovered | min cosine | iterations | fit s |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut recovered = 0;
    for seed in config.seed..config.seed + seeds {
        let dir = out.join(format!("seed-{seed}"));
        let (model, data, outcome) = run_bars(&config, seed, &dir, move |i, f| {
            if !quiet && i % 250 == 0 {
                eprintln!("seed {seed}: iteration {i}, L^H {f:.6}");
            }
        })
        .with_context(|| format!("bars run with seed {seed}"))?;
        let w = model.dictionary();
        let side = config.data.side;
        let atoms: Vec<Vec<f32>> = (0..w.ncols())
            .map(|c| (0..w.nrows()).map(|r| w[(r, c)] as f32).collect())
            .collect();
        plots::receptive_fields(&atoms, side, side, atoms.len(), 12, &dir.join("atoms.png"))?;
        let truth: Vec<Vec<f32>> = (0..data.fields.ncols())
            .map(|c| {
                (0..data.fields.nrows())
                    .map(|r| data.fields[(r, c)] as f32)
                    .collect()
            })
            .collect();
        plots::receptive_fields(&truth, side, side, truth.len(), 12, &dir.join("fields.png"))?;
        let matched = outcome
            .scores
            .iter()
            .filter(|&&s| s >= RECOVERY_COSINE)
            .count();
        recovered += outcome.recovered as usize;
        let min = outcome.scores.iter().copied().fold(f64::INFINITY, f64::min);
        writeln!(
            table,
            "| {seed} | {:.6} | {:.6} | {:+.4} | {matched} / {} | {min:.3} | {} | {:.1} |",
            outcome.objective,
            outcome.ground_truth,
            outcome.objective - outcome.ground_truth,
            outcome.scores.len(),
            outcome.iterations,
            outcome.fit_s
        )?;
        if !quiet {
            eprintln!(
                "seed {seed}: L^H {:.6}, ground truth {:.6}, {matched}/{} bars, {} iterations, {:.1} s ({})",
                outcome.objective,
                outcome.ground_truth,
                outcome.scores.len(),
                outcome.iterations,
                outcome.fit_s,
                outcome.stopped
            );
        }
    }
    writeln!(
        table,
        "\nAll bars recovered (|cos| ≥ {RECOVERY_COSINE}) in {recovered} of {seeds} seeds."
    )?;
    let path = out.join("results.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    print!("{table}");
    Ok(())
}
