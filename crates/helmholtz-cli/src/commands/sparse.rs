//! `helmholtz sparse`: the bars and patches experiments of the entropy-based sparse-coding paper
//! over seeds, with the learned atoms drawn and a markdown table of the outcomes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use helmholtz::objectives::sparse_coding::EntropyTerms;
use helmholtz_experiments::sparse::atoms::{columns, ordered_by_lambda, read_atoms};
use helmholtz_experiments::sparse::tables::{BarsTable, PatchesTable};
use helmholtz_experiments::sparse::{
    PatchesEpoch, SparseConfig, resume_patches, run_bars, run_patches_until,
};

use super::{ExitCode, RunArgs};
use crate::plots;
use crate::signals::Stop;

/// `helmholtz sparse CONFIG --seeds N`.
pub fn run(args: &RunArgs, seeds: u64) -> Result<()> {
    if seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let quiet = args.quiet;
    if let Some(dir) = &args.resume {
        return resume(dir, quiet);
    }
    let config = SparseConfig::load(args.config("sparse")?, &args.overrides)?;
    let out = args.out_dir(&config.name);
    helmholtz::run::rundir::refuse_used(&out)?;
    let full_batch = config.train.method == helmholtz_experiments::sparse::SparseMethod::Lbfgs;
    match config.data.source.as_str() {
        "patches" => return patches(&config, seeds, &out, quiet),
        "points" if !full_batch => return patches(&config, seeds, &out, quiet),
        "points" => return points(&config, seeds, &out, quiet),
        _ => {}
    }
    let mut table = BarsTable::default();
    for seed in config.seed..config.seed + seeds {
        let dir = out.join(format!("seed-{seed}"));
        let (model, data, outcome) = run_bars(&config, seed, &dir, move |i, f| {
            if !quiet && i % 250 == 0 {
                crate::err!("seed {seed}: iteration {i}, L^H {f:.6}");
            }
        })
        .with_context(|| format!("bars run with seed {seed}"))?;
        let side = config.data.side;
        let atoms = columns(&model.dictionary());
        plots::receptive_fields(&atoms, side, side, atoms.len(), 12, &dir.join("atoms.png"))?;
        let truth = columns(&data.fields);
        plots::receptive_fields(&truth, side, side, truth.len(), 12, &dir.join("fields.png"))?;
        table.push(&outcome);
        if !quiet {
            crate::err!(
                "seed {seed}: L^H {:.6}, ground truth {:.6}, {}/{} bars, {} iterations, {:.1} s ({})",
                outcome.objective,
                outcome.ground_truth,
                outcome.matched(),
                outcome.scores.len(),
                outcome.iterations,
                outcome.fit_s,
                outcome.stopped
            );
        }
    }
    let table = table.finish();
    let path = out.join("results.md");
    std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{table}");
    Ok(())
}

/// Points by full-batch L-BFGS, per seed: the objective and entropies, and the atoms when the
/// points are square images.
fn points(config: &SparseConfig, seeds: u64, out: &Path, quiet: bool) -> Result<()> {
    use helmholtz_experiments::sparse::run_points;
    let mut lines = String::from(
        "| seed | L^H | posterior H | prior H | noise H | σ² | iterations | stopped |\n|---|---|---|---|---|---|---|---|\n",
    );
    for seed in config.seed..config.seed + seeds {
        let dir = out.join(format!("seed-{seed}"));
        let (model, outcome) = run_points(config, seed, &dir, move |i, f| {
            if !quiet && i % 250 == 0 {
                crate::err!("seed {seed}: iteration {i}, L^H {f:.6}");
            }
        })
        .with_context(|| format!("points run with seed {seed}"))?;
        let w = model.dictionary();
        if let Some(side) = config.data.image_side(w.nrows()) {
            draw_atoms(&w, &outcome.lambda, side, &dir.join("atoms.png"))?;
        }
        lines.push_str(&format!(
            "| {seed} | {:.6} | {:.4} | {:.4} | {:.4} | {:.6} | {} | {} |\n",
            outcome.objective,
            outcome.entropies[0],
            outcome.entropies[1],
            outcome.entropies[2],
            outcome.sigma2,
            outcome.iterations,
            outcome.stopped
        ));
    }
    let path = out.join("results.md");
    std::fs::write(&path, &lines).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{lines}");
    Ok(())
}

/// Patches (or points by EM or Adam): EM or amortized Adam with the configured annealing, per
/// seed; atoms ordered by λ, ELBO and entropy curves, and a per-epoch table.
fn patches(config: &SparseConfig, seeds: u64, out: &Path, quiet: bool) -> Result<()> {
    let mut table = PatchesTable::default();
    let stop = Stop::install(out.join(format!("seed-{}", config.seed)))?;
    for seed in config.seed..config.seed + seeds {
        let dir = out.join(format!("seed-{seed}"));
        stop.watch(dir.clone());
        let result = run_patches_until(
            config,
            seed,
            &dir,
            patches_progress(seed, quiet),
            &stop.flag,
        );
        let outcome = interrupted_or(result, &stop)
            .with_context(|| format!("patches run with seed {seed}"))?;
        report_patches_seed(config, seed, &dir, outcome, &mut table, quiet)?;
    }
    let path = out.join("results.md");
    std::fs::write(&path, table.text()).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{}", table.text());
    Ok(())
}

/// `helmholtz sparse --resume RUN/seed-N`: continues a patches run from its last checkpoint.
fn resume(dir: &Path, quiet: bool) -> Result<()> {
    let stop = Stop::install(dir.to_path_buf())?;
    let config = SparseConfig::load(&dir.join(helmholtz::run::CONFIG_FILE), &[])?;
    let seed = config.seed;
    let result = resume_patches(dir, patches_progress(seed, quiet), &stop.flag);
    let outcome =
        interrupted_or(result, &stop).with_context(|| format!("resuming {}", dir.display()))?;
    let mut table = PatchesTable::default();
    report_patches_seed(&config, seed, dir, outcome, &mut table, quiet)?;
    crate::out_part!("{}", table.text());
    Ok(())
}

/// Progress lines every 20 batches.
fn patches_progress(seed: u64, quiet: bool) -> impl FnMut(usize, usize, f64) {
    move |epoch, batch, f| {
        if !quiet && batch % 20 == 0 {
            crate::err!("seed {seed}, epoch {epoch}, batch {batch}: objective {f:.3}");
        }
    }
}

/// A run stopped by a signal becomes the exit code 130 or 143 (after saying how to resume).
fn interrupted_or<T>(result: helmholtz::Result<T>, stop: &Stop) -> Result<T> {
    match result {
        Err(helmholtz::Error::Interrupted(message)) => {
            crate::err!("{message}");
            Err(ExitCode(stop.exit_code()).into())
        }
        other => Ok(other?),
    }
}

/// The table rows, the log lines, the atoms and the charts of one seed's patches run.
fn report_patches_seed(
    config: &SparseConfig,
    seed: u64,
    dir: &Path,
    (w, epochs, terms): (faer::Mat<f64>, Vec<PatchesEpoch>, EntropyTerms),
    table: &mut PatchesTable,
    quiet: bool,
) -> Result<()> {
    table.push(seed, &epochs);
    for e in &epochs {
        if !quiet {
            crate::err!(
                "seed {seed}, epoch {}: β {}, train ELBO {:.3}, held-out ELBO {:.3}, Gini {:.3}{}, {:.1} s",
                e.epoch,
                e.train.beta,
                e.train.elbo,
                e.test.elbo,
                e.gini.0,
                e.atom_spread.map_or(String::new(), |s| format!(
                    ", median atom spread {:.2} px",
                    s[1]
                )),
                e.epoch_s
            );
        }
    }
    if let Some(side) = config.data.image_side(w.nrows()) {
        draw_atoms(&w, &terms.lambda, side, &dir.join("atoms.png"))?;
    }
    let series = |name: &str, f: &dyn Fn(&PatchesEpoch) -> f64| plots::Series {
        label: name.to_string(),
        points: epochs.iter().map(|e| (e.epoch as f64, f(e))).collect(),
    };
    plots::line_chart(
        &[
            series("train objective (annealed)", &|e| e.train.objective),
            series("train ELBO", &|e| e.train.elbo),
            series("held-out ELBO", &|e| e.test.elbo),
        ]
        .into_iter()
        .chain(epochs.iter().any(|e| e.test_refined.is_some()).then(|| {
            series("held-out ELBO, posteriors refined", &|e| {
                e.test_refined.as_ref().map_or(f64::NAN, |r| r.elbo)
            })
        }))
        .collect::<Vec<_>>(),
        "entropy objective per patch",
        "epoch",
        "nats",
        &dir.join("elbo.png"),
    )?;
    plots::line_chart(
        &[
            series("posterior entropy", &|e| e.test.entropies[0]),
            series("prior entropy", &|e| e.test.entropies[1]),
            series("noise entropy", &|e| e.test.entropies[2]),
        ],
        "entropies (held-out patches)",
        "epoch",
        "nats",
        &dir.join("entropies.png"),
    )?;
    Ok(())
}

/// The atoms (columns of `w`, `size` × `size` images) ordered by λ (most used first), each
/// scaled to its own range, in a square grid.
fn draw_atoms(w: &faer::Mat<f64>, lambda: &[f64], size: usize, path: &Path) -> Result<()> {
    let atoms = ordered_by_lambda(w, lambda);
    let columns = (atoms.len() as f64).sqrt().ceil() as usize;
    plots::receptive_fields(&atoms, size, size, columns, 4, path)
}

/// `helmholtz atoms`: the spatial spread of a patches run's atoms, and their picture.
pub fn atoms(run: &Path, output: Option<PathBuf>) -> Result<()> {
    let atoms =
        read_atoms(run).with_context(|| format!("reading the atoms of {}", run.display()))?;
    let (h, size) = (atoms.spread.len(), atoms.size);
    crate::out!(
        "{}: spatial spread of {h} atoms (pixels; a flat {size}×{size} atom: {:.2}): min {:.2}, quartiles {:.2} / {:.2} / {:.2}, max {:.2}",
        run.display(),
        atoms.flat_spread(),
        atoms.spread_at(0.0),
        atoms.spread_at(0.25),
        atoms.spread_at(0.5),
        atoms.spread_at(0.75),
        atoms.spread_at(1.0)
    );
    let path = output.unwrap_or_else(|| run.join("atoms.png"));
    draw_atoms(&atoms.dictionary, &atoms.lambda, size, &path)?;
    crate::out!("atoms ordered by λ: {}", path.display());
    Ok(())
}

/// `helmholtz denoise`: PSNRs of posterior-mean and MAP denoising, and the four images.
pub fn denoise(run: &Path, image: String, noise: f64, stride: usize, seed: u64) -> Result<()> {
    use helmholtz_experiments::sparse::denoise::{DenoiseConfig, denoise_run};
    let config = DenoiseConfig {
        image,
        noise_sd: noise,
        stride,
        seed,
        ..DenoiseConfig::default()
    };
    let (outcome, images) =
        denoise_run(run, &config).with_context(|| format!("denoising with {}", run.display()))?;
    let (height, width) = images.shape;
    let panels: Vec<Vec<f32>> = images
        .images
        .iter()
        .map(|im| im.iter().map(|&v| v as f32).collect())
        .collect();
    plots::image_grid(&panels, height, width, 4, 1, &run.join("denoise.png"))?;
    let json = serde_json::json!({ "config": config, "psnr_db": outcome });
    std::fs::write(
        run.join("denoise.json"),
        serde_json::to_string_pretty(&json)?,
    )
    .with_context(|| format!("writing {}", run.join("denoise.json").display()))?;
    crate::out!(
        "{} with noise sd {} ({} patches, stride {}):\n  noisy        {:.2} dB\n  posterior    {:.2} dB\n  MAP          {:.2} dB (κ = σ²/λ)\n  MAP, best κ  {:.2} dB (κ × {}, chosen with the clean image)",
        config.image,
        config.noise_sd,
        outcome.patches,
        config.stride,
        outcome.noisy,
        outcome.posterior,
        outcome.map,
        outcome.map_best,
        outcome.map_best_scale
    );
    Ok(())
}
