//! SNGD on a target you write: a survey-weighted skew-normal likelihood (each observation
//! counts with its own weight), minimised by surrogate natural gradient descent through the
//! Gaussian surrogate of the skew-normal. A target is one `impl Target`: its value and its
//! gradient in the distribution's standard coordinates (ξ, Ω, η).
//!
//! cargo run --release -p helmholtz --example sngd_own_target

use faer::{Mat, MatRef};
use helmholtz::dist::skew::{SkewGradient, SkewNormal};
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
use helmholtz::math::rng::Stream;
use helmholtz::objectives::targets::Target;
use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};

/// Σ_i w_i (−ln p(x_i)) with weights summing to one.
struct WeightedNll<'a> {
    points: MatRef<'a, f64>,
    weights: Vec<f64>,
}

impl Target for WeightedNll<'_> {
    type Point = SkewNormal;
    type Gradient = SkewGradient;

    fn evaluate(&self, q: &SkewNormal) -> helmholtz::Result<(f64, SkewGradient)> {
        q.weighted_nll_gradient(self.points, &self.weights)
    }
}

fn main() -> helmholtz::Result<()> {
    // Data: 3000 draws of a skew-normal; the second half was sampled at half the rate of the
    // first, so each of its points stands for twice as many people.
    let truth = SkewNormal::new(vec![1.0, -1.0], Mat::identity(2, 2), vec![3.0, -1.0])?;
    let points = truth.sample(3000, &mut Stream::new(0, &[]))?;
    let raw: Vec<f64> = (0..points.nrows())
        .map(|i| if i < 1500 { 1.0 } else { 2.0 })
        .collect();
    let total: f64 = raw.iter().sum();
    let target = WeightedNll {
        points: points.as_ref(),
        weights: raw.iter().map(|w| w / total).collect(),
    };

    // SNGD (mean-parameter form) from N(0, I) with η = 0; η is stepped by Adam.
    let start = Gaussians::single(vec![0.0; 2], Mat::identity(2, 2));
    let search = LineSearch::Backtracking {
        start: 0.5,
        halvings: 20,
    };
    let mut sngd = SngdMean::<SkewNormal>::new(
        GaussianMixture::single(2),
        start,
        vec![0.0; 2],
        0.05,
        search,
    )?;
    for step in 0..=300 {
        if step % 50 == 0 {
            let q = sngd.distribution()?;
            println!(
                "step {step:>3}: weighted NLL {:.5}, ξ = [{:.3}, {:.3}], η = [{:.3}, {:.3}]",
                target.value(&q)?,
                q.xi[0],
                q.xi[1],
                q.eta[0],
                q.eta[1]
            );
        }
        sngd.step(&target)?;
    }
    println!(
        "truth: NLL {:.5} at ξ = [1, -1], η = [3, -1]",
        target.value(&truth)?
    );
    Ok(())
}
