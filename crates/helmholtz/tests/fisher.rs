//! The Fisher information of a Helmholtz machine's generative net, computed exactly by enumerating
//! every configuration of a tiny model: it is block-diagonal with one block per unit, the sampled
//! blocks converge to it, and the per-unit natural step equals the dense natural gradient and is
//! invariant under recoding a binary unit (nrws.md §2.4–2.5).

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use helmholtz::math::rng::Stream;
use helmholtz::math::{sigmoid, softplus};
use helmholtz::models::{HelmholtzMachine, ParamSet, Pass, WeightInit};
use helmholtz::optim::fisher::{FisherKind, LayerFisher, generative_samples, precondition_prior};

const SIZES: [usize; 3] = [3, 2, 2];

fn model() -> HelmholtzMachine {
    let mut model = HelmholtzMachine::new(&SIZES, WeightInit::GlorotNormal, 0.0, 5).unwrap();
    let mut rng = Stream::new(17, &[]);
    for t in &mut model.params.tensors {
        for v in &mut t.data {
            *v += (rng.uniform_f64() - 0.5) as f32;
        }
    }
    model
}

/// A pass holding every configuration (x, h) of the model, scored under p.
fn enumerate(model: &HelmholtzMachine) -> Pass {
    let bits: usize = model.sizes.iter().sum();
    let n = 1 << bits;
    let mut pass = Pass::new(&model.sizes, n);
    pass.n = n;
    for c in 0..n {
        let mut rest = c;
        for (level, &size) in model.sizes.iter().enumerate() {
            for u in 0..size {
                pass.h[level][c * size + u] = (rest & 1) as f32;
                rest >>= 1;
            }
        }
    }
    model.score_generative(&mut pass);
    pass
}

/// Number of generative parameter tensors (prior, then a weight and a bias per layer).
fn n_p_tensors(model: &HelmholtzMachine) -> usize {
    1 + 2 * model.n_layers()
}

/// The score ∇_θp log p(x, h) of configuration c of `pass`, in f64 from the parameters,
/// flattened in ParamSet order over the p tensors; with log p(x, h) and the unit each coordinate
/// belongs to, as (level, unit).
fn score(model: &HelmholtzMachine, pass: &Pass, c: usize) -> (Vec<f64>, f64, Vec<(usize, usize)>) {
    let (mut s, mut owner, mut log_p) = (Vec::new(), Vec::new(), 0.0);
    let top = model.n_layers();
    let level = |l: usize| -> Vec<f64> {
        let size = model.sizes[l];
        pass.h[l][c * size..(c + 1) * size]
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let h_top = level(top);
    for (i, &h) in h_top.iter().enumerate() {
        let a = model.params.tensors[HelmholtzMachine::PRIOR].data[i] as f64;
        s.push(h - sigmoid(a));
        log_p += h * a - softplus(a);
        owner.push((top, i));
    }
    for l in 0..top {
        let (n_out, n_in) = (model.sizes[l], model.sizes[l + 1]);
        let (w, b) = (
            &model.params.tensors[model.p_index(l)].data,
            &model.params.tensors[model.p_index(l) + 1].data,
        );
        let (child, parents) = (level(l), level(l + 1));
        let delta: Vec<f64> = (0..n_out)
            .map(|i| {
                let a = b[i] as f64
                    + (0..n_in)
                        .map(|j| w[j * n_out + i] as f64 * parents[j])
                        .sum::<f64>();
                log_p += child[i] * a - softplus(a);
                child[i] - sigmoid(a)
            })
            .collect();
        for &parent in &parents {
            for (i, &d) in delta.iter().enumerate() {
                s.push(d * parent);
                owner.push((l, i));
            }
        }
        for (i, &d) in delta.iter().enumerate() {
            s.push(d);
            owner.push((l, i));
        }
    }
    (s, log_p, owner)
}

fn probabilities(pass: &Pass) -> Vec<f64> {
    pass.log_p[..pass.n].iter().map(|l| l.exp()).collect()
}

/// The exact joint Fisher Σ p(x,h) s sᵀ of the generative parameters, all in f64.
fn exact_fisher(model: &HelmholtzMachine) -> (Mat<f64>, Vec<(usize, usize)>) {
    let pass = enumerate(model);
    let (_, _, owner) = score(model, &pass, 0);
    let dim = owner.len();
    let mut fisher = Mat::zeros(dim, dim);
    let mut total = 0.0;
    for c in 0..pass.n {
        let (s, log_p, _) = score(model, &pass, c);
        let pc = log_p.exp();
        total += pc;
        for a in 0..dim {
            for b in 0..dim {
                fisher[(a, b)] += pc * s[a] * s[b];
            }
        }
    }
    assert!((total - 1.0).abs() < 1e-12, "Σ p(x, h) = {total}");
    (fisher, owner)
}

#[test]
fn the_exact_joint_fisher_is_block_diagonal_and_sampled_blocks_converge_to_it() {
    let model = model();
    let (fisher, owner) = exact_fisher(&model);
    for a in 0..owner.len() {
        for b in 0..owner.len() {
            if owner[a] != owner[b] {
                assert!(
                    fisher[(a, b)].abs() < 1e-12,
                    "F[{a},{b}] = {} across units",
                    fisher[(a, b)]
                );
            }
        }
    }
    // Each block equals E[σ(1−σ) h̃ h̃ᵀ] (weighted enumeration) and the dream estimate converges.
    let pass = enumerate(&model);
    let p = probabilities(&pass);
    let mut dreams = Pass::new(&model.sizes, 200_000);
    model.dream(200_000, false, &mut dreams, &mut Stream::new(3, &[]));
    for l in 0..model.n_layers() {
        let exact = generative_samples(&model, &pass, l, Some(p.clone()));
        let sampled = generative_samples(&model, &dreams, l, None);
        let coordinates: Vec<usize> = (0..owner.len()).filter(|&a| owner[a].0 == l).collect();
        for i in 0..model.sizes[l] {
            // Coordinates of unit i: its weights (by parent) then its bias.
            let unit: Vec<usize> = coordinates
                .iter()
                .copied()
                .filter(|&a| owner[a].1 == i)
                .collect();
            let block = exact.fisher_block(i);
            let estimate = sampled.fisher_block(i);
            for (r, &a) in unit.iter().enumerate() {
                for (c, &b) in unit.iter().enumerate() {
                    assert!(
                        (block[(r, c)] - fisher[(a, b)]).abs() < 1e-6,
                        "layer {l} unit {i}"
                    );
                    assert!(
                        (estimate[(r, c)] - block[(r, c)]).abs() < 4e-3,
                        "layer {l} unit {i}: sampled {} exact {}",
                        estimate[(r, c)],
                        block[(r, c)]
                    );
                }
            }
        }
    }
}

/// The gradient of the exact mean log-likelihood of `data` (vectors of length x_dim) with respect
/// to the generative parameters, by enumeration.
fn log_likelihood_gradient(model: &HelmholtzMachine, data: &[[f32; 3]]) -> ParamSet {
    let mut pass = enumerate(model);
    let p = probabilities(&pass);
    let d = model.x_dim();
    let mut coefficients = vec![0.0f32; pass.n];
    for x in data {
        let matches: Vec<usize> = (0..pass.n)
            .filter(|&c| pass.h[0][c * d..(c + 1) * d] == x[..])
            .collect();
        let p_x: f64 = matches.iter().map(|&c| p[c]).sum();
        for &c in &matches {
            coefficients[c] += (p[c] / p_x / data.len() as f64) as f32;
        }
    }
    let mut grads = model.params.zeros_like();
    model.accumulate_p_gradient(&mut pass, &coefficients, &mut grads);
    grads
}

/// The per-unit natural step of the generative parameters with the exact Fisher and α → 0.
fn natural_step(model: &HelmholtzMachine, grads: &ParamSet) -> ParamSet {
    let alpha = 1e-10;
    let pass = enumerate(model);
    let p = probabilities(&pass);
    let mut step = grads.clone();
    let prior = &model.params.tensors[HelmholtzMachine::PRIOR].data;
    precondition_prior(
        prior,
        &mut step.tensors[HelmholtzMachine::PRIOR].data,
        alpha,
    );
    for l in 0..model.n_layers() {
        let fisher = LayerFisher::fit(
            &generative_samples(model, &pass, l, Some(p.clone())),
            alpha,
            FisherKind::Blocks,
        )
        .unwrap();
        let index = model.p_index(l);
        let (left, right) = step.tensors.split_at_mut(index + 1);
        fisher.precondition(&mut left[index].data, &mut right[0].data);
    }
    step
}

fn flatten_p(model: &HelmholtzMachine, set: &ParamSet) -> Vec<f64> {
    set.tensors[..n_p_tensors(model)]
        .iter()
        .flat_map(|t| t.data.iter().map(|&v| v as f64))
        .collect()
}

fn max_relative(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn the_per_unit_natural_step_equals_the_dense_natural_gradient() {
    let model = model();
    let grads = log_likelihood_gradient(&model, &[[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]);
    let (fisher, _) = exact_fisher(&model);
    let g = flatten_p(&model, &grads);
    let mut dense = Mat::from_fn(g.len(), 1, |r, _| g[r]);
    fisher
        .llt(Side::Lower)
        .expect("the joint Fisher of this model is positive definite")
        .solve_in_place(dense.as_mut());
    let dense: Vec<f64> = (0..g.len()).map(|r| dense[(r, 0)]).collect();
    let blocks = flatten_p(&model, &natural_step(&model, &grads));
    assert!(
        max_relative(&blocks, &dense) < 1e-4,
        "relative difference {}",
        max_relative(&blocks, &dense)
    );
    // And it is not the plain gradient.
    assert!(max_relative(&g, &dense) > 0.1);
}

/// The model with hidden unit `unit` of level 1 recoded as 1 − h, and the map of a parameter
/// step into the new coordinates.
fn recode(model: &HelmholtzMachine, unit: usize) -> HelmholtzMachine {
    let mut recoded = model.clone();
    let (n0, n1) = (model.sizes[0], model.sizes[1]);
    let (p0w, p0b, p1w, p1b) = (
        model.p_index(0),
        model.p_index(0) + 1,
        model.p_index(1),
        model.p_index(1) + 1,
    );
    let t = &mut recoded.params.tensors;
    // Children (x | h1): W'[:, unit] = −W[:, unit], b' = b + W[:, unit].
    for i in 0..n0 {
        let w = model.params.tensors[p0w].data[unit * n0 + i];
        t[p0w].data[unit * n0 + i] = -w;
        t[p0b].data[i] += w;
    }
    // The unit itself (h1 | h2): negate its weights and bias.
    for j in 0..model.sizes[2] {
        t[p1w].data[j * n1 + unit] *= -1.0;
    }
    t[p1b].data[unit] *= -1.0;
    recoded
}

fn map_step(model: &HelmholtzMachine, step: &ParamSet, unit: usize) -> Vec<f64> {
    let mut mapped = step.clone();
    let n0 = model.sizes[0];
    let n1 = model.sizes[1];
    let (p0w, p0b, p1w, p1b) = (
        model.p_index(0),
        model.p_index(0) + 1,
        model.p_index(1),
        model.p_index(1) + 1,
    );
    for i in 0..n0 {
        let dw = step.tensors[p0w].data[unit * n0 + i];
        mapped.tensors[p0w].data[unit * n0 + i] = -dw;
        mapped.tensors[p0b].data[i] += dw;
    }
    for j in 0..model.sizes[2] {
        mapped.tensors[p1w].data[j * n1 + unit] *= -1.0;
    }
    mapped.tensors[p1b].data[unit] *= -1.0;
    flatten_p(model, &mapped)
}

#[test]
fn the_natural_step_is_invariant_under_recoding_a_unit_and_the_plain_gradient_is_not() {
    let model = model();
    let data = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]];
    let recoded = recode(&model, 0);
    // Same distribution over x.
    let marginal = |m: &HelmholtzMachine| {
        let pass = enumerate(m);
        let p = probabilities(&pass);
        let mut px = [0.0; 8];
        for c in 0..pass.n {
            px[c & 7] += p[c];
        }
        px
    };
    let (a, b) = (marginal(&model), marginal(&recoded));
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
        "{a:?} vs {b:?}"
    );

    let grads = log_likelihood_gradient(&model, &data);
    let grads_recoded = log_likelihood_gradient(&recoded, &data);
    let natural = map_step(&model, &natural_step(&model, &grads), 0);
    let natural_recoded = flatten_p(&recoded, &natural_step(&recoded, &grads_recoded));
    assert!(
        max_relative(&natural, &natural_recoded) < 1e-4,
        "natural steps differ by {}",
        max_relative(&natural, &natural_recoded)
    );
    let plain = map_step(&model, &grads, 0);
    let plain_recoded = flatten_p(&recoded, &grads_recoded);
    assert!(
        max_relative(&plain, &plain_recoded) > 1e-2,
        "plain steps differ by only {}",
        max_relative(&plain, &plain_recoded)
    );
}
