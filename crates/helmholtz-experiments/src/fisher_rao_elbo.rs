//! The examples of "On the natural gradient of the evidence lower bound" (natgrad.md a.3) with
//! the exact geometry of [`helmholtz::geometry`]: the cylindrical flows (all three coincide),
//! flows of the latent-class model (they differ) and the cosines with the visible-Fisher
//! direction over the Jeffreys prior, with a markdown summary.

use std::fmt::Write as _;

use helmholtz::Result;
use helmholtz::geometry::{
    Flow, Geometry, JointModel, LatentClass, ProductBernoulli, euler_flow, histogram,
    jeffreys_latent_class, jeffreys_simplex, latent_class_cosines,
};
use helmholtz::math::rng::Stream;

/// Euler step of the flows.
pub const DT: f64 = 0.01;
/// Euler steps of the flows.
pub const STEPS: usize = 500;
/// The three flows, in the order of every result.
pub const FLOW_NAMES: [&str; 3] = [
    "joint-Fisher NG of −ELBO, q = target's conditional",
    "joint-Fisher NG of L_V (perfect recognition)",
    "visible-Fisher NG of L_V",
];
/// Bins of the cosine histograms over [−1, 1].
pub const BINS: usize = 20;

/// Settings of the experiment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Model points drawn from the Jeffreys prior for each cosine histogram.
    pub points: usize,
    /// Random targets (joint distributions from the Jeffreys prior of the 7-simplex).
    pub targets: usize,
    /// Random starting points of the latent-class flows.
    pub starts: usize,
    /// Seed of every draw.
    pub seed: u64,
}

/// One curve per flow: (t, KL(p* ‖ p_V)) along it.
pub type FlowCurves = Vec<Vec<(f64, f64)>>;

/// The cosines of one target.
#[derive(Clone, Debug)]
pub struct TargetCosines {
    /// Fraction in the top bin [0.9, 1] and fraction negative, ELBO with q = the target's
    /// conditional.
    pub elbo: (f64, f64),
    /// The same with perfect recognition.
    pub perfect: (f64, f64),
    /// Histogram of the ELBO cosines: (bin centre, fraction of points).
    pub elbo_histogram: Vec<(f64, f64)>,
    /// Histogram of the perfect-recognition cosines.
    pub perfect_histogram: Vec<(f64, f64)>,
}

/// The experiment's outcome.
#[derive(Clone, Debug)]
pub struct Report {
    /// The three flows on the cylindrical model.
    pub cylindrical: FlowCurves,
    /// The three flows of the latent-class model from the first start (empty without starts).
    pub latent_class: FlowCurves,
    /// The cosines of each target.
    pub cosines: Vec<TargetCosines>,
    /// The markdown summary.
    pub summary: String,
}

/// L_V along each of the three flows from `start`, and the point where each flow ends.
fn flows(
    model: &dyn JointModel,
    start: &[f64],
    target_joint: &[f64],
) -> Result<(FlowCurves, Vec<Vec<f64>>)> {
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
            .collect::<Result<Vec<_>>>()?;
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

/// The fraction in the top bin, the fraction negative and the histogram of `values`.
fn fractions(values: &[f64]) -> (f64, f64, Vec<(f64, f64)>) {
    let h = histogram(values, BINS);
    let top = values.iter().filter(|&&c| c >= 0.9).count() as f64 / values.len() as f64;
    let negative = values.iter().filter(|&&c| c < 0.0).count() as f64 / values.len() as f64;
    let points = h
        .iter()
        .enumerate()
        .map(|(k, f)| (-1.0 + (k as f64 + 0.5) * 2.0 / BINS as f64, *f))
        .collect();
    (top, negative, points)
}

/// Runs the flows and the cosine histograms. `log` hears a line per target.
pub fn run(settings: &Settings, log: &mut dyn FnMut(&str)) -> Result<Report> {
    // Two cosines per drawn point, with the point's parameters and gradients.
    helmholtz::memory::check_allocation(
        &format!("{} Jeffreys-prior points", settings.points),
        helmholtz::memory::bytes_of(&[settings.points, 64], 8),
    )?;
    let mut summary = String::from("# Fisher–Rao gradient of the ELBO\n\n");
    let w = |summary: &mut String, args: std::fmt::Arguments<'_>| {
        summary.write_fmt(args).expect("writing to a String");
        summary.push('\n');
    };
    // Cylindrical: three independent Bernoulli units, the first hidden.
    let cylinder = ProductBernoulli {
        n_units: 3,
        n_hidden_units: 1,
    };
    let star = [0.95, 0.1, 0.9];
    let start = [0.02, 0.95, 0.02];
    let (cylindrical, ends) = flows(&cylinder, &start, &cylinder.joint(&star))?;
    w(
        &mut summary,
        format_args!(
            "## Cylindrical model (product of Bernoullis), θ* = (0.95, 0.1, 0.9), θ0 = (0.02, 0.95, 0.02), Euler dt = {DT}, T = {}\n\n| flow | y(T) | z(T) | L_V(T) |\n|---|---|---|---|",
            DT * STEPS as f64
        ),
    );
    for ((name, end), curve) in FLOW_NAMES.iter().zip(&ends).zip(&cylindrical) {
        w(
            &mut summary,
            format_args!(
                "| {name} | {:.6} | {:.6} | {:.3e} |",
                end[1],
                end[2],
                curve.last().map_or(f64::NAN, |p| p.1)
            ),
        );
    }
    w(
        &mut summary,
        format_args!(
            "\nClosed form of the Euler steps: y(T) = 0.1 + 0.85 · 0.99^{STEPS} = {:.6}.\n",
            0.1 + 0.85 * 0.99f64.powi(STEPS as i32)
        ),
    );
    // Latent-class model: flows from random starts towards a random target.
    let model = LatentClass { n_visible_units: 2 };
    let mut rng = Stream::new(settings.seed, &[0xF15E]);
    let flow_target = model.joint(&jeffreys_latent_class(&model, 0.02, &mut rng));
    w(
        &mut summary,
        format_args!(
            "## Latent-class model, {} random starts and a random target θ* (Jeffreys prior)\n\nL_V at the end of each flow (t = T unless the flow left the model's domain earlier: then its last valid time is given).\n\n| start | ELBO flow (q = target's conditional) | joint-Fisher KL flow | visible-Fisher KL flow |\n|---|---|---|---|",
            settings.starts
        ),
    );
    let mut latent_class = Vec::new();
    for s in 0..settings.starts {
        let start = jeffreys_latent_class(&model, 0.02, &mut rng);
        let (curves, _) = flows(&model, &start, &flow_target)?;
        let end = |k: usize| match curves[k].last() {
            Some(&(t, l)) if t + 1e-9 < DT * STEPS as f64 => format!("{l:.3e} (t = {t:.2})"),
            Some(&(_, l)) => format!("{l:.3e}"),
            None => "–".into(),
        };
        w(
            &mut summary,
            format_args!("| {s} | {} | {} | {} |", end(0), end(1), end(2)),
        );
        if s == 0 {
            latent_class = curves;
        }
    }
    // Cosine histograms.
    w(
        &mut summary,
        format_args!(
            "\n## Cosines with the visible-Fisher direction over {} Jeffreys-prior points of the latent-class model\n\n| target | top bin [0.9, 1], ELBO (q = target's conditional) | negative, ELBO | top bin, perfect recognition | negative, perfect recognition |\n|---|---|---|---|---|",
            settings.points
        ),
    );
    let mut cosines = Vec::new();
    for t in 0..settings.targets {
        let target = jeffreys_simplex(8, &mut rng);
        let values =
            latent_class_cosines(&model, &target, settings.points, settings.seed + t as u64)?;
        let (top_e, neg_e, hist_e) = fractions(&values.elbo);
        let (top_p, neg_p, hist_p) = fractions(&values.perfect);
        w(
            &mut summary,
            format_args!("| {t} | {top_e:.3} | {neg_e:.4} | {top_p:.3} | {neg_p:.4} |"),
        );
        log(&format!(
            "target {t}: top bin {top_e:.3} (ELBO), {top_p:.3} (perfect recognition)"
        ));
        cosines.push(TargetCosines {
            elbo: (top_e, neg_e),
            perfect: (top_p, neg_p),
            elbo_histogram: hist_e,
            perfect_histogram: hist_p,
        });
    }
    Ok(Report {
        cylindrical,
        latent_class,
        cosines,
        summary,
    })
}
