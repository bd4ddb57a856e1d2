//! `helmholtz experiment fisher-rao-elbo`: the examples of "On the natural gradient of the
//! evidence lower bound" (natgrad.md a.3) with the exact geometry of `geometry`: the
//! cylindrical flows (all three coincide), flows of the latent-class model (they differ) and the
//! cosine histograms over the Jeffreys prior, as PNGs and a markdown summary.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use helmholtz::geometry::{
    Flow, Geometry, JointModel, LatentClass, ProductBernoulli, euler_flow, histogram,
    jeffreys_latent_class, jeffreys_simplex, latent_class_cosines,
};
use helmholtz::math::rng::Stream;

use crate::plots::{Series, line_chart};

/// Settings of `helmholtz experiment fisher-rao-elbo`.
#[derive(clap::Args)]
pub struct Settings {
    /// Output directory.
    #[arg(long, default_value = "runs/fisher-rao-elbo")]
    pub out: PathBuf,
    /// Model points drawn from the Jeffreys prior for each cosine histogram.
    #[arg(long, default_value_t = 50_000)]
    pub points: usize,
    /// Random targets (joint distributions from the Jeffreys prior of the 7-simplex).
    #[arg(long, default_value_t = 2)]
    pub targets: usize,
    /// Random starting points of the latent-class flows.
    #[arg(long, default_value_t = 8)]
    pub starts: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

const DT: f64 = 0.01;
const STEPS: usize = 500;
const FLOW_NAMES: [&str; 3] = [
    "joint-Fisher NG of −ELBO, q = target's conditional",
    "joint-Fisher NG of L_V (perfect recognition)",
    "visible-Fisher NG of L_V",
];

/// L_V along each of the three flows from `start`, and the point where each flow ends.
type Flows = (Vec<Vec<(f64, f64)>>, Vec<Vec<f64>>);

fn flows(model: &dyn JointModel, start: &[f64], target_joint: &[f64]) -> Result<Flows> {
    let (p_star, q) = joint_geometry(model, target_joint);
    let mut curves = Vec::new();
    let mut ends = Vec::new();
    for flow in [Flow::JointElbo(&q), Flow::JointKl, Flow::VisibleKl] {
        let path = euler_flow(model, start, &p_star, &flow, DT, STEPS)?;
        let curve = path
            .iter()
            .enumerate()
            .map(|(k, theta)| {
                Geometry::at(model, theta)
                    .and_then(|g| g.kl_visible(&p_star))
                    .map(|kl| (k as f64 * DT, kl))
            })
            .collect::<helmholtz::Result<Vec<_>>>()?;
        curves.push(curve);
        ends.push(path.last().cloned().unwrap_or_default());
    }
    Ok((curves, ends))
}

/// The visible marginal and the conditional of a joint target.
fn joint_geometry(model: &dyn JointModel, joint: &[f64]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (nv, nh) = (model.n_visible(), model.n_hidden());
    let p_star: Vec<f64> = (0..nv)
        .map(|v| joint[v * nh..(v + 1) * nh].iter().sum())
        .collect();
    let q = (0..nv)
        .map(|v| (0..nh).map(|h| joint[v * nh + h] / p_star[v]).collect())
        .collect();
    (p_star, q)
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
    let mut summary = String::from("# Fisher–Rao gradient of the ELBO\n\n");
    // Cylindrical: three independent Bernoulli units, the first hidden.
    let cylinder = ProductBernoulli {
        n_units: 3,
        n_hidden_units: 1,
    };
    let star = [0.95, 0.1, 0.9];
    let start = [0.02, 0.95, 0.02];
    let (curves, ends) = flows(&cylinder, &start, &cylinder.joint(&star))?;
    chart(
        &curves,
        "cylindrical model: the three flows coincide",
        &settings.out.join("cylindrical-flows.png"),
    )?;
    writeln!(
        summary,
        "## Cylindrical model (product of Bernoullis), θ* = (0.95, 0.1, 0.9), θ0 = (0.02, 0.95, 0.02), Euler dt = {DT}, T = {}\n\n| flow | y(T) | z(T) | L_V(T) |\n|---|---|---|---|",
        DT * STEPS as f64
    )?;
    for ((name, end), curve) in FLOW_NAMES.iter().zip(&ends).zip(&curves) {
        writeln!(
            summary,
            "| {name} | {:.6} | {:.6} | {:.3e} |",
            end[1],
            end[2],
            curve.last().map_or(f64::NAN, |p| p.1)
        )?;
    }
    writeln!(
        summary,
        "\nClosed form of the Euler steps: y(T) = 0.1 + 0.85 · 0.99^{STEPS} = {:.6}.\n",
        0.1 + 0.85 * 0.99f64.powi(STEPS as i32)
    )?;
    // Latent-class model: flows from random starts towards a random target.
    let model = LatentClass { n_visible_units: 2 };
    let mut rng = Stream::new(settings.seed, &[0xF15E]);
    let flow_target = model.joint(&jeffreys_latent_class(&model, 0.02, &mut rng));
    writeln!(
        summary,
        "## Latent-class model, {} random starts and a random target θ* (Jeffreys prior)\n\nL_V at the end of each flow (t = T unless the flow left the model's domain earlier: then its last valid time is given).\n\n| start | ELBO flow (q = target's conditional) | joint-Fisher KL flow | visible-Fisher KL flow |\n|---|---|---|---|",
        settings.starts
    )?;
    for s in 0..settings.starts {
        let start = jeffreys_latent_class(&model, 0.02, &mut rng);
        let (curves, _) = flows(&model, &start, &flow_target)?;
        if s == 0 {
            chart(
                &curves,
                "latent-class model: the flows differ",
                &settings.out.join("latent-class-flows.png"),
            )?;
        }
        let end = |k: usize| match curves[k].last() {
            Some(&(t, l)) if t + 1e-9 < DT * STEPS as f64 => format!("{l:.3e} (t = {t:.2})"),
            Some(&(_, l)) => format!("{l:.3e}"),
            None => "–".into(),
        };
        writeln!(summary, "| {s} | {} | {} | {} |", end(0), end(1), end(2))?;
    }
    // Cosine histograms.
    writeln!(
        summary,
        "\n## Cosines with the visible-Fisher direction over {} Jeffreys-prior points of the latent-class model\n\n| target | top bin [0.9, 1], ELBO (q = target's conditional) | negative, ELBO | top bin, perfect recognition | negative, perfect recognition |\n|---|---|---|---|---|",
        settings.points
    )?;
    for t in 0..settings.targets {
        let target = jeffreys_simplex(8, &mut rng);
        let cosines =
            latent_class_cosines(&model, &target, settings.points, settings.seed + t as u64)?;
        let bins = 20;
        let fractions = |values: &[f64]| -> (f64, f64, Vec<(f64, f64)>) {
            let h = histogram(values, bins);
            let top = values.iter().filter(|&&c| c >= 0.9).count() as f64 / values.len() as f64;
            let negative = values.iter().filter(|&&c| c < 0.0).count() as f64 / values.len() as f64;
            let points = h
                .iter()
                .enumerate()
                .map(|(k, f)| (-1.0 + (k as f64 + 0.5) * 2.0 / bins as f64, *f))
                .collect();
            (top, negative, points)
        };
        let (top_e, neg_e, hist_e) = fractions(&cosines.elbo);
        let (top_p, neg_p, hist_p) = fractions(&cosines.perfect);
        line_chart(
            &[
                Series {
                    label: "ELBO, q = target's conditional".into(),
                    points: hist_e,
                },
                Series {
                    label: "perfect recognition".into(),
                    points: hist_p,
                },
            ],
            &format!("target {t}: cosine with the visible-Fisher direction"),
            "cosine (bins of 0.1)",
            "fraction of points",
            &settings.out.join(format!("cosines-target-{t}.png")),
        )?;
        writeln!(
            summary,
            "| {t} | {top_e:.3} | {neg_e:.4} | {top_p:.3} | {neg_p:.4} |"
        )?;
        crate::err!("target {t}: top bin {top_e:.3} (ELBO), {top_p:.3} (perfect recognition)");
    }
    let path = settings.out.join("summary.md");
    std::fs::write(&path, &summary).with_context(|| format!("writing {}", path.display()))?;
    crate::out_part!("{summary}");
    crate::out!("wrote {}", settings.out.display());
    Ok(())
}
