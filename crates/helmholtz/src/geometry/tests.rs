//! Tests of the Fisher–Rao geometry: gradients against finite differences, the paper's
//! equivalence on cylindrical models, flows and Jeffreys draws.

use super::*;
use crate::math::rng::Stream;
use crate::math::sigmoid;
use crate::models::HelmholtzMachine;
use crate::optim::fisher::{FisherKind, LayerFisher, LayerSamples, precondition_prior};

fn random_distribution(n: usize, rng: &mut Stream) -> Vec<f64> {
    let e: Vec<f64> = (0..n)
        .map(|_| -(rng.uniform_f64().max(1e-12)).ln())
        .collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|x| x / total).collect()
}

fn random_kernel(nv: usize, nh: usize, rng: &mut Stream) -> Kernel {
    (0..nv).map(|_| random_distribution(nh, rng)).collect()
}

fn max_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn analytic_jacobians_match_finite_differences() {
    let mut rng = Stream::new(1, &[]);
    let bern = ProductBernoulli {
        n_units: 3,
        n_hidden_units: 1,
    };
    let lc = LatentClass { n_visible_units: 2 };
    let sbn = SbnStack {
        sizes: vec![2, 2, 1],
    };
    let simplex = Simplex {
        n_visible: 4,
        n_hidden: 2,
    };
    let models: [(&dyn JointModel, bool); 4] =
        [(&bern, true), (&lc, true), (&sbn, false), (&simplex, false)];
    for (model, probabilities) in models {
        let theta: Vec<f64> = (0..model.n_params())
            .map(|_| {
                if probabilities {
                    0.1 + 0.8 * rng.uniform_f64()
                } else {
                    rng.normal()
                }
            })
            .collect();
        let p = model.joint(&theta);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let analytic = model.jacobian(&theta);
        let numeric = finite_difference_jacobian(|t| model.joint(t), &theta);
        for r in 0..analytic.nrows() {
            for c in 0..analytic.ncols() {
                assert!(
                    (analytic[(r, c)] - numeric[(r, c)]).abs() < 1e-8,
                    "({r}, {c}): {} vs {}",
                    analytic[(r, c)],
                    numeric[(r, c)]
                );
            }
        }
    }
}

/// R1: on the full simplex, dπ(G⁺∇(−ELBO)) = p_V − p* for any recognition kernel.
#[test]
fn on_the_simplex_the_elbo_flow_moves_the_marginal_towards_the_target() {
    let mut rng = Stream::new(2, &[]);
    let model = Simplex {
        n_visible: 4,
        n_hidden: 2,
    };
    for _ in 0..5 {
        let theta: Vec<f64> = (0..8).map(|_| rng.normal()).collect();
        let geometry = Geometry::at(&model, &theta).unwrap();
        let target = random_distribution(4, &mut rng);
        let q = random_kernel(4, 2, &mut rng);
        // The chain rule of KL: −ELBO − H(p*) = D(p* ‖ p_V) + Σ_v p*(v) D(q(·|v) ‖ p(·|v)).
        let conditional = geometry.conditional();
        let gap: f64 = (0..4)
            .map(|v| {
                target[v]
                    * (0..2)
                        .map(|h| q[v][h] * (q[v][h] / conditional[v][h]).ln())
                        .sum::<f64>()
            })
            .sum();
        let entropy: f64 = -target.iter().map(|t| t * t.ln()).sum::<f64>();
        let elbo_value = geometry.elbo(&target, &q).unwrap();
        assert!(
            (-elbo_value - entropy - geometry.kl_visible(&target).unwrap() - gap).abs() < 1e-12
        );
        // Both gradients against finite differences.
        let numeric_elbo = finite_difference_jacobian(
            |t| vec![-Geometry::at(&model, t).unwrap().elbo(&target, &q).unwrap()],
            &theta,
        );
        let numeric_kl = finite_difference_jacobian(
            |t| {
                vec![
                    Geometry::at(&model, t)
                        .unwrap()
                        .kl_visible(&target)
                        .unwrap(),
                ]
            },
            &theta,
        );
        let (ge, gk) = (
            geometry.neg_elbo_gradient(&target, &q).unwrap(),
            geometry.kl_gradient(&target).unwrap(),
        );
        for k in 0..8 {
            assert!((ge[k] - numeric_elbo[(0, k)]).abs() < 1e-7);
            assert!((gk[k] - numeric_kl[(0, k)]).abs() < 1e-7);
        }
        let [elbo, _, _] = geometry.directions(&target, &q).unwrap();
        let pushed = geometry.push_visible(&elbo);
        let expected: Vec<f64> = geometry
            .p_v
            .iter()
            .zip(&target)
            .map(|(p, t)| p - t)
            .collect();
        assert!(
            max_difference(&pushed, &expected) < 1e-8,
            "{pushed:?} vs {expected:?}"
        );
        // The gap's gradient is vertical: with q = p(h | v) the ELBO and KL directions agree.
        let exact = geometry.conditional();
        let [with_exact, kl, _] = geometry.directions(&target, &exact).unwrap();
        assert!(
            max_difference(&geometry.push_joint(&with_exact), &geometry.push_joint(&kl)) < 1e-8
        );
    }
}

/// R2: a cylindrical model (independent Bernoulli units, the first hidden) moves p_V the same
/// way under all three flows, for every q; the latent-class model does not.
#[test]
fn cylindrical_models_agree_and_the_latent_class_model_does_not() {
    let mut rng = Stream::new(3, &[]);
    let cylinder = ProductBernoulli {
        n_units: 3,
        n_hidden_units: 1,
    };
    for _ in 0..5 {
        let theta: Vec<f64> = (0..3).map(|_| 0.05 + 0.9 * rng.uniform_f64()).collect();
        let geometry = Geometry::at(&cylinder, &theta).unwrap();
        assert!(geometry.cylindricity_defect().unwrap() < 1e-10);
        let target = random_distribution(4, &mut rng);
        let q = random_kernel(4, 2, &mut rng);
        let [elbo, joint_kl, visible_kl] = geometry.directions(&target, &q).unwrap();
        let reference = geometry.push_visible(&visible_kl);
        for direction in [&elbo, &joint_kl] {
            let pushed = geometry.push_visible(direction);
            assert!(
                max_difference(&pushed, &reference) < 1e-10,
                "{pushed:?} vs {reference:?}"
            );
        }
    }
    let latent_class = LatentClass { n_visible_units: 2 };
    let mut worst: f64 = 1.0;
    for _ in 0..5 {
        let theta: Vec<f64> = (0..5).map(|_| 0.05 + 0.9 * rng.uniform_f64()).collect();
        let geometry = Geometry::at(&latent_class, &theta).unwrap();
        assert!(geometry.cylindricity_defect().unwrap() > 1e-3);
        let target = random_distribution(4, &mut rng);
        let q = random_kernel(4, 2, &mut rng);
        let [elbo, _, visible_kl] = geometry.directions(&target, &q).unwrap();
        let cosine = visible_cosine(
            &geometry.push_visible(&elbo),
            &geometry.push_visible(&visible_kl),
            &geometry.p_v,
        );
        worst = worst.min(cosine);
    }
    assert!(
        worst < 0.99,
        "the directions agree too well: cosine {worst}"
    );
}

/// natgrad.md a.4: in the cylindrical example all three Euler flows give the closed-form
/// trajectory y_k = y* + (y0 − y*)(1 − dt)^k for the visible units; y(5) ≈ 0.1056.
#[test]
fn the_bernoulli_flows_follow_the_closed_form_euler_trajectory() {
    let model = ProductBernoulli {
        n_units: 3,
        n_hidden_units: 1,
    };
    let star = [0.95, 0.1, 0.9];
    let start = [0.02, 0.95, 0.02];
    let truth = Geometry::at(&model, &star).unwrap();
    let target = truth.p_v.clone();
    let q = truth.conditional();
    let (dt, steps): (f64, usize) = (0.01, 500);
    let closed = |y0: f64, y: f64| y + (y0 - y) * (1.0 - dt).powi(steps as i32);
    for flow in [Flow::JointElbo(&q), Flow::JointKl, Flow::VisibleKl] {
        let path = euler_flow(&model, &start, &target, &flow, dt, steps).unwrap();
        let end = path.last().unwrap();
        assert!(
            (end[1] - closed(0.95, 0.1)).abs() < 1e-10,
            "{flow:?}: y = {}",
            end[1]
        );
        assert!(
            (end[2] - closed(0.02, 0.9)).abs() < 1e-10,
            "{flow:?}: z = {}",
            end[2]
        );
    }
    assert!((closed(0.95, 0.1) - 0.1056).abs() < 1e-4);
}

/// The joint of `SbnStack::of_machine` is the machine's own p(x, h) (its `log_joint`).
#[test]
fn the_sbn_stack_is_the_machines_generative_net() {
    let machine =
        HelmholtzMachine::new(&[3, 2, 2], crate::models::WeightInit::GlorotNormal, 0.3, 5).unwrap();
    let (stack, theta) = SbnStack::of_machine(&machine);
    assert_eq!(theta.len(), stack.n_params());
    let joint = stack.joint(&theta);
    let nh = stack.n_hidden();
    let levels: Vec<Vec<f32>> = (0..3)
        .map(|level| {
            (0..joint.len())
                .flat_map(|x| {
                    stack.levels(x / nh, x % nh)[level]
                        .iter()
                        .map(|&v| v as f32)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    let log_p = machine.log_joint(&levels, joint.len());
    for (a, b) in joint.iter().zip(&log_p) {
        assert!((a.ln() - b).abs() < 1e-5, "{} vs {b}", a.ln());
    }
}

/// The NRWS update of a Helmholtz machine's generative net: the per-unit Fisher blocks of
/// `optim::fisher` (here with exact expectations over all configurations) give the same step
/// as the pseudo-inverse of the exact joint Fisher, G⁺∇.
#[test]
fn per_unit_fisher_blocks_give_the_exact_joint_natural_gradient() {
    let mut rng = Stream::new(4, &[]);
    let sizes = vec![3, 2, 2];
    let model = SbnStack {
        sizes: sizes.clone(),
    };
    let theta: Vec<f64> = (0..model.n_params()).map(|_| 0.8 * rng.normal()).collect();
    let geometry = Geometry::at(&model, &theta).unwrap();
    let target = random_distribution(8, &mut rng);
    let q = random_kernel(8, 16, &mut rng);
    let gradient = geometry.neg_elbo_gradient(&target, &q).unwrap();
    let exact = pinv_solve(geometry.joint_fisher().as_ref(), &gradient, RCOND).unwrap();
    // Enumerated configurations with their probabilities as Fisher-sample weights.
    let nh = model.n_hidden();
    let states: Vec<Vec<Vec<f64>>> = (0..geometry.p.len())
        .map(|x| model.levels(x / nh, x % nh))
        .collect();
    let alpha = 1e-9;
    let top = sizes.len() - 1;
    let mut blocks = vec![0.0; theta.len()];
    let prior_bias: Vec<f32> = theta[..sizes[top]].iter().map(|&b| b as f32).collect();
    let mut prior_grad: Vec<f32> = gradient[..sizes[top]].iter().map(|&g| g as f32).collect();
    precondition_prior(&prior_bias, &mut prior_grad, alpha);
    for (b, g) in blocks.iter_mut().zip(&prior_grad) {
        *b = f64::from(*g);
    }
    let mut offset = sizes[top];
    for l in 0..top {
        let (n_out, n_in) = (sizes[l], sizes[l + 1]);
        let mut parents = Vec::new();
        let mut probs = Vec::new();
        for s in &states {
            parents.extend(s[l + 1].iter().map(|&v| v as f32));
            for r in 0..n_out {
                let a = theta[offset + n_in * n_out + r]
                    + (0..n_in)
                        .map(|c| theta[offset + c * n_out + r] * s[l + 1][c])
                        .sum::<f64>();
                probs.push(sigmoid(a) as f32);
            }
        }
        let samples = LayerSamples {
            n_in,
            n_out,
            parents,
            probs,
            sample_weights: Some(geometry.p.clone()),
        };
        let fisher = LayerFisher::fit(&samples, alpha, FisherKind::Blocks).unwrap();
        // One unit's [W_r,: ; b_r] per column.
        let d = n_in + 1;
        let mut g = vec![0.0; d * n_out];
        for r in 0..n_out {
            for c in 0..n_in {
                g[r * d + c] = gradient[offset + c * n_out + r];
            }
            g[r * d + n_in] = gradient[offset + n_in * n_out + r];
        }
        fisher.precondition_columns(&mut g);
        for r in 0..n_out {
            for c in 0..n_in {
                blocks[offset + c * n_out + r] = g[r * d + c];
            }
            blocks[offset + n_in * n_out + r] = g[r * d + n_in];
        }
        offset += n_out * (n_in + 1);
    }
    let scale = exact.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(
        max_difference(&blocks, &exact) < 1e-5 * scale,
        "blocks {blocks:?}\nexact {exact:?}"
    );
}

#[test]
fn jeffreys_draws_have_the_beta_and_dirichlet_moments() {
    let mut rng = Stream::new(6, &[]);
    let model = LatentClass { n_visible_units: 2 };
    let n = 40_000;
    let draws: Vec<Vec<f64>> = (0..n)
        .map(|_| jeffreys_latent_class(&model, 0.0, &mut rng))
        .collect();
    let moments = |k: usize| {
        let mean = draws.iter().map(|d| d[k]).sum::<f64>() / n as f64;
        let var = draws.iter().map(|d| (d[k] - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var)
    };
    // Beta(3/2, 3/2): variance 1/16; Beta(1/2, 1/2): variance 1/8.
    let (m0, v0) = moments(0);
    let (m1, v1) = moments(3);
    assert!(
        (m0 - 0.5).abs() < 0.01 && (v0 - 1.0 / 16.0).abs() < 0.003,
        "{m0} {v0}"
    );
    assert!(
        (m1 - 0.5).abs() < 0.01 && (v1 - 1.0 / 8.0).abs() < 0.003,
        "{m1} {v1}"
    );
    // Dirichlet(½ × 8): mean 1/8, variance (1/8)(7/8)/5.
    let d: Vec<f64> = (0..n).map(|_| jeffreys_simplex(8, &mut rng)[2]).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!((mean - 0.125).abs() < 0.003 && (var - 0.125 * 0.875 / 5.0).abs() < 0.002);
    let cosines = latent_class_cosines(&model, &jeffreys_simplex(8, &mut rng), 300, 1).unwrap();
    assert_eq!(cosines.elbo.len(), 300);
    assert!(
        cosines
            .perfect
            .iter()
            .all(|c| (-1.0 - 1e-12..=1.0 + 1e-12).contains(c))
    );
    let h = histogram(&cosines.elbo, 20);
    assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn bad_targets_kernels_and_parameters_are_refused() {
    let model = LatentClass { n_visible_units: 2 };
    assert!(Geometry::at(&model, &[0.5; 4]).is_err());
    assert!(Geometry::at(&model, &[0.5, 0.2, 1.0, 0.3, 0.4]).is_err());
    let geometry = Geometry::at(&model, &[0.5, 0.2, 0.7, 0.3, 0.4]).unwrap();
    assert!(geometry.kl_visible(&[0.5, 0.5]).is_err());
    assert!(geometry.kl_gradient(&[0.5, 0.5, 0.5, -0.5]).is_err());
    let target = [0.25; 4];
    assert!(geometry.elbo(&target, &vec![vec![0.5, 0.5]; 3]).is_err());
    assert!(
        geometry
            .neg_elbo_gradient(&target, &vec![vec![0.7, 0.7]; 4])
            .is_err()
    );
    assert!(
        geometry
            .directions(&target, &vec![vec![0.5, 0.5]; 4])
            .is_ok()
    );
}
