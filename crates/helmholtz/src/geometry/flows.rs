//! Natural-gradient flows, Jeffreys-prior draws and the cosine histograms of the paper.

use rayon::prelude::*;

use super::*;
use crate::error::{Error, Result};
use crate::math::rng::{Stream, ids};

/// Which natural-gradient flow (natgrad.md a.3).
#[derive(Clone, Copy, Debug)]
pub enum Flow<'a> {
    /// Joint-Fisher natural gradient of −ELBO with a fixed recognition kernel.
    JointElbo(&'a Kernel),
    /// Joint-Fisher natural gradient of L_V (perfect recognition).
    JointKl,
    /// Visible-Fisher natural gradient of L_V.
    VisibleKl,
}

/// Explicit Euler steps θ ← θ − dt · (natural gradient) from `theta`, `steps` times, towards the
/// visible target `target`; returns every parameter point (steps + 1 of them, or fewer when a
/// step leaves the model's domain: the path then ends at the last valid point).
pub fn euler_flow(
    model: &dyn JointModel,
    theta: &[f64],
    target: &[f64],
    flow: &Flow<'_>,
    dt: f64,
    steps: usize,
) -> Result<Vec<Vec<f64>>> {
    let mut path = vec![theta.to_vec()];
    let mut current = theta.to_vec();
    Geometry::at(model, theta)?;
    for _ in 0..steps {
        let Ok(geometry) = Geometry::at(model, &current) else {
            path.pop();
            break;
        };
        let direction = geometry.direction(target, flow)?;
        current
            .iter_mut()
            .zip(&direction)
            .for_each(|(t, d)| *t -= dt * d);
        path.push(current.clone());
    }
    Ok(path)
}

/// A draw from the Jeffreys prior of the joint Fisher of the latent-class model. In its mean
/// coordinates that Fisher is diagonal, G = diag(1/(x(1−x)), P(h)/(y_{h,i}(1−y_{h,i}))), so the
/// prior factorises: x ~ Beta((n+1)/2, (n+1)/2) for n visible units, every y ~ Beta(½, ½).
/// Points with a coordinate within `cutoff` of 0 or 1 are redrawn.
pub fn jeffreys_latent_class(model: &LatentClass, cutoff: f64, rng: &mut Stream) -> Vec<f64> {
    let n = model.n_visible_units as f64;
    loop {
        let mut theta = vec![symmetric_beta((n + 1.0) / 2.0, rng)];
        theta.extend((0..2 * model.n_visible_units).map(|_| symmetric_beta(0.5, rng)));
        if theta.iter().all(|&t| t > cutoff && t < 1.0 - cutoff) {
            return theta;
        }
    }
}

/// Beta(a, a) as G₁/(G₁ + G₂) with Gamma(a) draws (a = ½: a squared normal / 2; a = k + ½: sums).
fn symmetric_beta(a: f64, rng: &mut Stream) -> f64 {
    let g1 = gamma_half_integer(a, rng);
    let g2 = gamma_half_integer(a, rng);
    g1 / (g1 + g2)
}

/// Gamma(a, 1) for a a multiple of ½: a sum of 2a halves of squared standard normals.
fn gamma_half_integer(a: f64, rng: &mut Stream) -> f64 {
    let halves = (2.0 * a).round() as usize;
    (0..halves).map(|_| 0.5 * rng.normal().powi(2)).sum()
}

/// A draw from the Jeffreys prior of the simplex with `n` states, Dirichlet(½, …, ½).
pub fn jeffreys_simplex(n: usize, rng: &mut Stream) -> Vec<f64> {
    let g: Vec<f64> = (0..n).map(|_| gamma_half_integer(0.5, rng)).collect();
    let total: f64 = g.iter().sum();
    g.iter().map(|x| x / total).collect()
}

/// Cosines, in the visible Fisher–Rao metric, between the visible directions of the
/// joint-Fisher natural gradients and that of the visible-Fisher natural gradient of L_V.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cosines {
    /// ELBO with q fixed to the target's conditional p*(h | v).
    pub elbo: Vec<f64>,
    /// L_V with the joint Fisher (perfect recognition, q = p_θ(h | v)).
    pub perfect: Vec<f64>,
}

/// The non-cylindrical study of natgrad.md a.3: `points` model points from the Jeffreys prior of
/// the latent-class model (seeded chunks, in parallel), one joint target `target` (its visible
/// marginal is p*, its conditional the fixed recognition kernel).
pub fn latent_class_cosines(
    model: &LatentClass,
    target: &[f64],
    points: usize,
    seed: u64,
) -> Result<Cosines> {
    let (nv, nh) = (model.n_visible(), model.n_hidden());
    if target.len() != nv * nh {
        return Err(Error::Dimension(format!(
            "a joint target of {} states for {} × {}",
            target.len(),
            nv,
            nh
        )));
    }
    let p_star: Vec<f64> = (0..nv)
        .map(|v| target[v * nh..(v + 1) * nh].iter().sum())
        .collect();
    let q: Kernel = (0..nv)
        .map(|v| (0..nh).map(|h| target[v * nh + h] / p_star[v]).collect())
        .collect();
    const CHUNK: usize = 1000;
    let chunks: Vec<Result<Cosines>> = (0..points.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = Stream::new(seed, &[ids::SAMPLE, c as u64]);
            let mut out = Cosines::default();
            for _ in 0..CHUNK.min(points - c * CHUNK) {
                let theta = jeffreys_latent_class(model, 1e-3, &mut rng);
                let geometry = Geometry::at(model, &theta)?;
                let [elbo, joint_kl, visible_kl] = geometry.directions(&p_star, &q)?;
                let reference = geometry.push_visible(&visible_kl);
                out.elbo.push(visible_cosine(
                    &geometry.push_visible(&elbo),
                    &reference,
                    &geometry.p_v,
                ));
                out.perfect.push(visible_cosine(
                    &geometry.push_visible(&joint_kl),
                    &reference,
                    &geometry.p_v,
                ));
            }
            Ok(out)
        })
        .collect();
    let mut all = Cosines::default();
    for chunk in chunks {
        let chunk = chunk?;
        all.elbo.extend(chunk.elbo);
        all.perfect.extend(chunk.perfect);
    }
    Ok(all)
}

/// Fractions of `values` in `bins` equal bins over [−1, 1] (the last bin closed).
pub fn histogram(values: &[f64], bins: usize) -> Vec<f64> {
    let mut counts = vec![0.0; bins];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    for v in &finite {
        let k = (((v + 1.0) / 2.0) * bins as f64)
            .floor()
            .clamp(0.0, (bins - 1) as f64) as usize;
        counts[k] += 1.0;
    }
    counts
        .iter()
        .map(|c| c / finite.len().max(1) as f64)
        .collect()
}
