//! `helmholtz experiment fisher-rao-elbo`: the examples of "On the natural gradient of the
//! evidence lower bound" (`helmholtz_experiments::fisher_rao_elbo`): the cylindrical flows (all
//! three coincide), flows of the latent-class model (they differ) and the cosine histograms
//! over the Jeffreys prior, as PNGs and a markdown summary.

use std::path::PathBuf;

use anyhow::{Context, Result};
use helmholtz_experiments::fisher_rao_elbo::{self, FLOW_NAMES};

use crate::plots::{Series, line_chart};

/// Settings of `helmholtz experiment fisher-rao-elbo`.
#[derive(clap::Args)]
pub struct Settings {
    /// Output directory.
    #[arg(long, default_value = "runs/fisher-rao-elbo")]
    pub out: PathBuf,
    /// Model points drawn from the Jeffreys prior for each cosine histogram.
    #[arg(long, default_value_t = 50_000, value_parser = super::count::<usize>)]
    pub points: usize,
    /// Random targets (joint distributions from the Jeffreys prior of the 7-simplex).
    #[arg(long, default_value_t = 2, value_parser = super::count::<usize>)]
    pub targets: usize,
    /// Random starting points of the latent-class flows.
    #[arg(long, default_value_t = 8)]
    pub starts: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn chart(curves: &[Vec<(f64, f64)>], title: &str, out: &std::path::Path) -> Result<()> {
    let series: Vec<Series> = curves
        .iter()
        .zip(FLOW_NAMES)
        .map(|(points, label)| Series {
            label: label.into(),
            points: points.clone(),
        })
        .collect();
    line_chart(&series, title, "t", "KL(p* ‖ p_V)", out)
}

pub fn run(settings: Settings) -> Result<()> {
    super::output_dir(&settings.out)?;
    let report = fisher_rao_elbo::run(
        &fisher_rao_elbo::Settings {
            points: settings.points,
            targets: settings.targets,
            starts: settings.starts,
            seed: settings.seed,
        },
        &mut |line| crate::err!("{line}"),
    )?;
    chart(
        &report.cylindrical,
        "cylindrical model: the three flows coincide",
        &settings.out.join("cylindrical-flows.png"),
    )?;
    if !report.latent_class.is_empty() {
        chart(
            &report.latent_class,
            "latent-class model: the flows differ",
            &settings.out.join("latent-class-flows.png"),
        )?;
    }
    for (t, cosines) in report.cosines.iter().enumerate() {
        line_chart(
            &[
                Series {
                    label: "ELBO, q = target's conditional".into(),
                    points: cosines.elbo_histogram.clone(),
                },
                Series {
                    label: "perfect recognition".into(),
                    points: cosines.perfect_histogram.clone(),
                },
            ],
            &format!("target {t}: cosine with the visible-Fisher direction"),
            "cosine (bins of 0.1)",
            "fraction of points",
            &settings.out.join(format!("cosines-target-{t}.png")),
        )?;
    }
    let path = settings.out.join("summary.md");
    std::fs::write(&path, &report.summary)
        .with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{}", report.summary);
    crate::out!("wrote {}", settings.out.display());
    Ok(())
}
