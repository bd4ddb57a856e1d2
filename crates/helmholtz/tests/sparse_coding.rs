//! Sparse coding with the entropy objective on bars data (the full 5×5 experiment over 5 seeds
//! is `helmholtz sparse configs/bars-full.toml --seeds 5`, docs/REPRODUCTION.md; the runs'
//! tests are in helmholtz-experiments).

use helmholtz::data::synthetic::{bars, match_fields};
use helmholtz::models::sparse_coding::{PosteriorKind, SparseCoding};
use helmholtz::objectives::sparse_coding::{entropy_objective, standard_elbo};
use helmholtz::train::sparse_coding::{LbfgsConfig, Target, fit_lbfgs, fit_posteriors_at};

fn config() -> LbfgsConfig {
    LbfgsConfig {
        history: 20,
        ..LbfgsConfig::default()
    }
}

#[test]
fn full_covariance_lbfgs_recovers_small_bars_and_beats_the_true_dictionary() {
    // 3 vertical and 3 horizontal bars on a 3×3 grid.
    let data = bars(3, 300, 0.1, 1);
    let mut model = SparseCoding::new(9, 6, 300, PosteriorKind::Full, 1).unwrap();
    let report = fit_lbfgs(
        &mut model,
        data.x.as_ref(),
        1.0,
        Target::All,
        &config(),
        |_, _| {},
    )
    .unwrap();
    let scores = match_fields(model.dictionary().as_ref(), data.fields.as_ref());
    assert!(scores.iter().all(|&s| s >= 0.95), "{scores:?}");

    let mut truth = SparseCoding::new(9, 6, 300, PosteriorKind::Full, 1).unwrap();
    truth.set_dictionary(&data.fields).unwrap();
    let before = truth.dictionary();
    let reference = fit_lbfgs(
        &mut truth,
        data.x.as_ref(),
        1.0,
        Target::Posteriors,
        &config(),
        |_, _| {},
    )
    .unwrap();
    let (learned, at_truth) = (report.terms.objective(1.0), reference.terms.objective(1.0));
    assert!(
        learned >= at_truth - 0.05,
        "learned {learned}, truth {at_truth}"
    );
    // The posteriors-only fit left the dictionary alone.
    assert_eq!((truth.dictionary() - &before).norm_max(), 0.0);
    // At the optimum the entropy objective is the standard ELBO at the closed-form λ, σ², and
    // σ² is close to the generating noise variance.
    let terms = entropy_objective(&model, data.x.as_ref(), 1.0, None).unwrap();
    let elbo = standard_elbo(&model, data.x.as_ref(), &terms.lambda, terms.sigma2).unwrap();
    assert!((elbo - learned).abs() < 1e-9 * learned.abs());
    assert!(
        (terms.sigma2 / 0.01 - 1.0).abs() < 0.3,
        "σ² = {}",
        terms.sigma2
    );
}

#[test]
fn diagonal_posteriors_learn_and_annealing_makes_codes_sparser() {
    let data = bars(3, 200, 0.1, 2);
    let fit = |beta: f64| {
        let mut model = SparseCoding::new(9, 6, 200, PosteriorKind::Diagonal, 2).unwrap();
        let start = entropy_objective(&model, data.x.as_ref(), 1.0, None).unwrap();
        fit_lbfgs(
            &mut model,
            data.x.as_ref(),
            beta,
            Target::All,
            &config(),
            |_, _| {},
        )
        .unwrap();
        let end = entropy_objective(&model, data.x.as_ref(), 1.0, None).unwrap();
        (start, end)
    };
    let (start, plain) = fit(1.0);
    assert!(plain.objective(1.0) > start.objective(1.0) + 10.0);
    // A heavier weight on the prior entropy pushes the scales λ down.
    let (_, annealed) = fit(3.0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&annealed.lambda) < mean(&plain.lambda));
}

#[test]
fn posteriors_at_a_held_prior_are_each_points_own_optimum() {
    use helmholtz::objectives::sparse_coding::standard_elbo_points;
    // The generating model of 4×4 bars: its fields, λ = 1 (Laplace(0, 1) latents), σ² = 0.01.
    let data = bars(4, 60, 0.1, 3);
    let (lambda, sigma2) = (vec![1.0; 8], 0.01);
    for kind in [PosteriorKind::Diagonal, PosteriorKind::Full] {
        let mut model = SparseCoding::new(16, 8, 1, kind, 0).unwrap();
        model.set_dictionary(&data.fields).unwrap();
        let (fitted, values) =
            fit_posteriors_at(&model, data.x.as_ref(), &lambda, sigma2, &config()).unwrap();
        assert_eq!(fitted.dictionary(), model.dictionary());
        // Each value is that point's F_n, and the posteriors are a stationary point of F.
        let mut grad = vec![0.0; fitted.theta.len()];
        let again =
            standard_elbo_points(&fitted, data.x.as_ref(), &lambda, sigma2, Some(&mut grad))
                .unwrap();
        for (a, b) in again.iter().zip(&values) {
            assert!((a - b).abs() < 1e-12 * a.abs(), "{a} vs {b}");
        }
        let largest = grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) * 60.0;
        assert!(largest < 1e-3, "{kind:?}: gradient {largest}");
        // Better than the unit Gaussian at zero, for every point.
        let start = SparseCoding::new(16, 8, 60, kind, 0).unwrap();
        let mut start = start;
        start.set_dictionary(&data.fields).unwrap();
        let before = standard_elbo_points(&start, data.x.as_ref(), &lambda, sigma2, None).unwrap();
        assert!(values.iter().zip(&before).all(|(a, b)| a > b));
        // The posterior means find the generating latents.
        let mut dot = 0.0;
        let (mut a2, mut b2) = (0.0, 0.0);
        for n in 0..60 {
            for k in 0..8 {
                let (a, b) = (fitted.mean(n)[k], data.latents[(k, n)]);
                dot += a * b;
                a2 += a * a;
                b2 += b * b;
            }
        }
        let cosine = dot / (a2 * b2).sqrt();
        assert!(cosine > 0.95, "{kind:?}: cosine {cosine}");
        // A point alone gets the posterior it gets among the others.
        let (alone, value) =
            fit_posteriors_at(&model, data.x.subcols(11, 1), &lambda, sigma2, &config()).unwrap();
        assert_eq!(alone.mean(0), fitted.mean(11));
        assert_eq!(value[0], values[11]);
    }
}
