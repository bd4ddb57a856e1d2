//! Sparse coding with the entropy objective on bars data (the full 5×5 experiment over 5 seeds
//! is `helmholtz sparse configs/bars-full.toml --seeds 5`, docs/REPRODUCTION.md; the runs'
//! tests are in helmholtz-experiments).

use helmholtz::data::synthetic::{bars, match_fields};
use helmholtz::models::sparse_coding::{PosteriorKind, SparseCoding};
use helmholtz::objectives::sparse_coding::{entropy_objective, standard_elbo};
use helmholtz::train::sparse_coding::{
    LbfgsConfig, Target, fit_lbfgs, fit_lbfgs_scaled, fit_posteriors_at,
};

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

/// The posteriors handed to L-BFGS divided by c (a diagonal preconditioner) reach the plain
/// fit's maximiser, by another path: another iteration count, the same objective, λ, σ² and
/// atoms. A bad c is refused by name.
#[test]
fn a_posterior_scale_changes_the_path_not_the_optimum() {
    let data = bars(3, 300, 0.1, 1);
    let fit = |scale: f64| {
        let mut model = SparseCoding::new(9, 6, 300, PosteriorKind::Full, 1).unwrap();
        let report = fit_lbfgs_scaled(
            &mut model,
            data.x.as_ref(),
            1.0,
            Target::All,
            &config(),
            scale,
            |_, _| {},
        );
        report.map(|report| (model, report))
    };
    let (plain_model, plain) = fit(1.0).unwrap();
    let (scaled_model, scaled) = fit(3.0).unwrap();
    assert_ne!(plain.iterations, scaled.iterations);
    let (a, b) = (plain.terms.objective(1.0), scaled.terms.objective(1.0));
    assert!((a - b).abs() < 1e-6 * a.abs(), "{a} vs {b}");
    assert!((plain.terms.sigma2 / scaled.terms.sigma2 - 1.0).abs() < 1e-4);
    // The same atoms, up to order and sign.
    let scores = match_fields(
        scaled_model.dictionary().as_ref(),
        plain_model.dictionary().as_ref(),
    );
    assert!(scores.iter().all(|&s| s > 0.999), "{scores:?}");
    // Scale 1 is fit_lbfgs itself, bit for bit.
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
    assert_eq!(model.theta, plain_model.theta);
    assert_eq!(report.iterations, plain.iterations);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let error = fit(bad).err().unwrap();
        assert!(error.to_string().contains("posterior_scale"), "{error}");
    }
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

/// A degenerate model (one λ near 0, a huge σ²; from 2 EM epochs on points far from 0): the
/// E-step of a point reaches the kink of |μ|/λ at μ = 0 with a collapsed scale, where argmin's
/// Moré–Thuente line search halved its step forever. The minimisation ends within its iteration
/// limit and a bounded number of evaluations, at a finite point: either by a stalled line search
/// (which it says) or at the limit.
#[test]
fn an_e_step_at_a_kink_stops_instead_of_searching_forever() {
    use faer::Mat;
    use helmholtz::optim::quasi_newton::{LINE_SEARCH_EVALUATIONS, minimize};
    let atoms = [
        [-0.6645020246505737, 0.7472864985466003],
        [-0.3546369671821594, -0.9350040555000305],
        [0.9002147316932678, 0.43544620275497437],
    ];
    let w = Mat::from_fn(2, 3, |r, c| atoms[c][r]);
    let lambda = [0.012930342927575111, 11.479528427124023, 17.724821090698242];
    let sigma2 = 9634.189453125;
    let x = Mat::from_fn(2, 1, |r, _| [99.5019675493077, 101.92953205381698][r]);
    let mut model = SparseCoding::new(2, 3, 1, PosteriorKind::Diagonal, 0).unwrap();
    model.set_dictionary(&w).unwrap();
    let e_step = LbfgsConfig {
        max_iters: 20,
        ..config()
    };
    let (fitted, values) = fit_posteriors_at(&model, x.as_ref(), &lambda, sigma2, &e_step).unwrap();
    assert!(values[0].is_finite() && fitted.mean(0).iter().all(|m| m.is_finite()));
    // The same problem through the minimiser: it reports the stall.
    let offset = 6;
    let objective = |p: &[f64]| {
        let mut trial = model.clone();
        trial.theta[offset..].copy_from_slice(p);
        let mut grad = vec![0.0; trial.theta.len()];
        let f = helmholtz::objectives::sparse_coding::standard_elbo_points(
            &trial,
            x.as_ref(),
            &lambda,
            sigma2,
            Some(&mut grad),
        )?;
        Ok((-f[0], grad[offset..].iter().map(|g| -g).collect()))
    };
    let start = model.theta[offset..].to_vec();
    let minimum = minimize(objective, start, &e_step, |_, _| {}).unwrap();
    assert!(
        minimum.stopped.contains("no progress")
            || minimum.stopped.contains("maximum number of iterations"),
        "{}",
        minimum.stopped
    );
    assert!(minimum.iterations <= 20 && minimum.value.is_finite());
    assert!(minimum.evaluations <= 20 * (LINE_SEARCH_EVALUATIONS + 1));
    assert_eq!(-minimum.value, values[0]);
}
