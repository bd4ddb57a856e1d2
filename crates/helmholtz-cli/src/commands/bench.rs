//! `helmholtz bench`: RWS training throughput and the share of time in matrix products versus
//! elementwise (sigmoid / softplus / sampling) work.
//!
//! The step is timed as a whole; then the same matrix products (the same functions on the
//! operands of a real wake and dream pass of the trained-so-far model, with the step's parallel
//! chunking) and the same elementwise kernels are timed alone. Medians over the timed batches.
//! Every product has a 0/1 operand; bench prints each operand's fraction of ones (what a product
//! done as sums of selected columns would cost relative to a dense one; BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use helmholtz::math::numerics::bernoulli_terms;
use helmholtz::math::rng::Stream;
use helmholtz::models::HelmholtzMachine;
use helmholtz::models::hm::Pass;
use helmholtz::models::sbn::{SbnShape, accumulate_gradient, preactivation};
use helmholtz::run::{Config, Points};
use helmholtz::train::{Batch, HmLearner, StepContext, Variant};
use rayon::prelude::*;

/// Which pass an operand comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Wake,
    Dream,
}

/// One matrix product of a chunk of an RWS step: a layer's pre-activations (`gradient` false) or
/// its weight gradient (true), with the 0/1 operand at `level` of the `phase` pass (the data
/// points themselves, once per point, where `per_point`).
#[derive(Clone, Copy, Debug)]
struct Product {
    shape: SbnShape,
    /// Index of the layer's weights in the model's parameters (its bias follows).
    weights: usize,
    phase: Phase,
    level: usize,
    gradient: bool,
    per_point: bool,
}

/// A chunk's passes and the scratch its timed products write to.
struct ChunkOperands {
    points: usize,
    x: Vec<f32>,
    wake: Pass,
    dream: Pass,
    out: Vec<f32>,
    delta: Vec<f32>,
    grad_w: Vec<f32>,
    grad_b: Vec<f32>,
    ones: Vec<f32>,
}

/// Buffers of the timed elementwise pass: pre-activations (template and working copy), samples,
/// uniforms and log-probability terms.
struct KernelBuffers {
    template: Vec<f32>,
    a: Vec<f32>,
    s: Vec<f32>,
    u: Vec<f32>,
    terms: Vec<f32>,
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Every matrix product one chunk of an RWS step performs.
fn products(model: &HelmholtzMachine, variant: Variant) -> Vec<Product> {
    let sizes = &model.sizes;
    let layers = sizes.len() - 1;
    let p = |l: usize| {
        let shape = SbnShape {
            n_in: sizes[l + 1],
            n_out: sizes[l],
        };
        (shape, model.p_index(l))
    };
    let q = |l: usize| {
        let shape = SbnShape {
            n_in: sizes[l],
            n_out: sizes[l + 1],
        };
        (shape, model.q_index(l))
    };
    let product = |(shape, weights), phase, level, gradient| Product {
        shape,
        weights,
        phase,
        level,
        gradient,
        per_point: false,
    };
    // q layer 0 once per point.
    let mut list = vec![Product {
        per_point: true,
        ..product(q(0), Phase::Wake, 0, false)
    }];
    for l in 1..layers {
        list.push(product(q(l), Phase::Wake, l, false)); // wake q forward
    }
    for l in 0..layers {
        list.push(product(p(l), Phase::Wake, l + 1, false)); // p scores of wake samples
        list.push(product(p(l), Phase::Wake, l + 1, true)); // p gradient
    }
    if variant != Variant::Ws {
        list.push(Product {
            per_point: true,
            ..product(q(0), Phase::Wake, 0, true) // q wake gradient, layer 0 (reduced over k)
        });
        for l in 1..layers {
            list.push(product(q(l), Phase::Wake, l, true));
        }
    }
    if variant != Variant::Bihm {
        for l in 0..layers {
            list.push(product(p(l), Phase::Dream, l + 1, false)); // dream
            list.push(product(q(l), Phase::Dream, l, false)); // q scores of dreams
            list.push(product(q(l), Phase::Dream, l, true)); // q sleep gradient
        }
    }
    list
}

/// The 0/1 operand of `product` in a chunk (the chunk's data points, or a level of its wake or
/// dream pass) and its number of columns.
fn operand<'a>(
    product: &Product,
    x: &'a [f32],
    points: usize,
    wake: &'a Pass,
    dream: &'a Pass,
) -> (&'a [f32], usize) {
    if product.per_point {
        return (x, points);
    }
    let pass = match product.phase {
        Phase::Wake => wake,
        Phase::Dream => dream,
    };
    (&pass.h[product.level], pass.n)
}

/// Runs one product on a chunk's operands.
fn run_product(product: &Product, chunk: &mut ChunkOperands, model: &HelmholtzMachine) {
    let Product { shape, .. } = *product;
    let ChunkOperands {
        points,
        x,
        wake,
        dream,
        out,
        delta,
        grad_w,
        grad_b,
        ones,
    } = chunk;
    let (h, n) = operand(product, x, *points, wake, dream);
    if product.gradient {
        accumulate_gradient(shape, delta, h, ones, n, grad_w, grad_b);
    } else {
        let tensors = &model.params.tensors;
        preactivation(
            shape,
            &tensors[product.weights].data,
            &tensors[product.weights + 1].data,
            h,
            n,
            out,
        );
    }
}

/// Fraction of ones in the operand of `product` over all chunks.
fn density(product: &Product, chunks: &[ChunkOperands]) -> f64 {
    let (ones, all) = chunks.iter().fold((0usize, 0usize), |(ones, all), c| {
        let (h, n) = operand(product, &c.x, c.points, &c.wake, &c.dream);
        let len = product.shape.n_in * n;
        (
            ones + h[..len].iter().filter(|&&v| v != 0.0).count(),
            all + len,
        )
    });
    ones as f64 / all as f64
}

/// Elements passed through the Bernoulli kernel by one chunk.
fn elementwise(sizes: &[usize], points: usize, k: usize, variant: Variant) -> usize {
    let n = points * k;
    let hidden: usize = sizes[1..].iter().sum();
    let all: usize = sizes.iter().sum();
    // Wake: q on every hidden level, p on every level plus the prior.
    let mut count = hidden * n + (all + sizes[sizes.len() - 1]) * n;
    if variant != Variant::Bihm {
        count += (all + sizes[sizes.len() - 1] - sizes[0]) * n + hidden * n + sizes[0] * n;
    }
    count
}

/// The config bench uses when none is given: the repository's MNIST RWS config when MNIST is
/// present, else the quickstart (both built into the binary, so bench runs from any directory).
const DEFAULT_CONFIGS: [(&str, &str); 2] = [
    (
        "configs/mnist-rws.toml",
        include_str!("../../../../configs/mnist-rws.toml"),
    ),
    (
        "configs/quickstart.toml",
        include_str!("../../../../configs/quickstart.toml"),
    ),
];

pub fn run(config: Option<PathBuf>, batches: usize, overrides: &[String]) -> Result<()> {
    if let Some(path) = &config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if helmholtz::run::config::config_command(&table).map(|(command, _)| command)
            == Some("sparse")
        {
            return super::bench_sparse::run(path, batches, overrides);
        }
    }
    let (config, path) = match config {
        Some(path) => (
            Config::load(&path, overrides)
                .with_context(|| format!("loading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let mnist_present = helmholtz::data::default_data_dir().join("mnist").is_dir();
            let (name, text) = DEFAULT_CONFIGS[if mnist_present { 0 } else { 1 }];
            (
                Config::parse(text, overrides, Path::new(name))?,
                format!("{name} (built in)"),
            )
        }
    };
    let data = helmholtz::run::data::load(&config.data)?;
    config.check_memory(data.train.dim())?;
    let mut sizes = vec![data.train.dim()];
    sizes.extend(&config.model.hidden);
    let mut model =
        HelmholtzMachine::new(&sizes, config.model.init, config.model.bias, config.seed)?;
    let t = &config.train;
    let optimizer = config.optimizer.build(&model.params)?;
    let mut learner = HmLearner::from_config(t.wake_sleep(), t.natural.clone(), optimizer, &model)?;
    let b = t.batch_size.min(data.train.n_samples());
    // Under dynamic binarisation the training set holds grey levels, binarised anew each epoch
    // as the trainer does; one draw of them is timed here.
    let batch = match &data.train {
        Points::Binary(set) => set.columns(0, b),
        Points::Grey(set) => {
            helmholtz::data::binarize_fixed(&set.range(0, b), config.data.binarize_seed)
                .to_columns()
        }
    };
    let indices: Vec<usize> = (0..b).collect();
    let view = Batch {
        values: &batch,
        dim: sizes[0],
        indices: &indices,
    };
    crate::out!(
        "bench: {} ({:?}, K = {}, batch {b}, {} threads, {} batches timed)",
        path,
        sizes,
        t.k,
        rayon::current_num_threads(),
        batches
    );
    if let Some(n) = &t.natural {
        crate::out!(
            "natural gradient: {:?} Fisher, α = {}, factors refreshed every {} steps",
            n.fisher,
            n.alpha,
            n.refresh_every
        );
    }
    let mut step_s = Vec::new();
    for step in 0..batches + 3 {
        let started = Instant::now();
        let ctx = StepContext {
            seed: config.seed,
            epoch: 0,
            batch: step,
            step: step as u64,
        };
        learner.gradient(&model, &view, &ctx)?;
        learner.inner.update(&mut model);
        if step >= 3 {
            step_s.push(started.elapsed().as_secs_f64());
        }
    }
    // The same products and kernels, alone, with the step's chunking.
    let n_chunks = b.div_ceil(t.chunk_points);
    let chunk_points: Vec<usize> = (0..n_chunks)
        .map(|c| t.chunk_points.min(b - c * t.chunk_points))
        .collect();
    let list = products(&model, t.algorithm);
    let widest = sizes.iter().copied().max().unwrap_or(0);
    let mut operands: Vec<ChunkOperands> = chunk_points
        .iter()
        .enumerate()
        .map(|(c, &points)| {
            let n = points * t.k;
            let first = c * t.chunk_points * sizes[0];
            let x = batch[first..first + points * sizes[0]].to_vec();
            let mut rng = Stream::new(config.seed, &[c as u64]);
            let mut wake = Pass::new(&sizes, n);
            let mut q0_points = vec![0.0; sizes[1] * points];
            model.wake(&x, points, t.k, &mut q0_points, &mut wake, &mut rng);
            let mut dream = Pass::new(&sizes, n);
            model.dream(n, true, &mut dream, &mut rng);
            ChunkOperands {
                points,
                x,
                wake,
                dream,
                out: vec![0.0; widest * n],
                delta: vec![0.01; widest * n],
                grad_w: vec![0.0; widest * widest],
                grad_b: vec![0.0; widest],
                ones: vec![1.0; n],
            }
        })
        .collect();
    let flops: f64 = list
        .iter()
        .map(|p| {
            let columns: usize = chunk_points
                .iter()
                .map(|&points| if p.per_point { points } else { points * t.k })
                .sum();
            2.0 * (p.shape.n_out * p.shape.n_in * columns) as f64
        })
        .sum();
    let mut matmul_s = Vec::new();
    for rep in 0..batches.min(20) + 2 {
        let started = Instant::now();
        operands.par_iter_mut().for_each(|chunk| {
            for product in &list {
                run_product(product, chunk, &model);
            }
        });
        if rep >= 2 {
            matmul_s.push(started.elapsed().as_secs_f64());
        }
    }
    // Pre-activations spread over [-4.8, 4.8]; copied in before each pass (the kernel overwrites them).
    let mut buffers: Vec<KernelBuffers> = chunk_points
        .iter()
        .map(|&p| {
            let len = elementwise(&sizes, p, t.k, t.algorithm);
            let mut u = vec![0.0; len];
            Stream::new(1, &[p as u64]).fill_uniform_f32(&mut u);
            let template = (0..len).map(|i| ((i % 97) as f32 - 48.0) * 0.1).collect();
            KernelBuffers {
                template,
                a: vec![0.0; len],
                s: vec![0.0; len],
                u,
                terms: vec![0.0; len],
            }
        })
        .collect();
    let mut kernel_s = Vec::new();
    for rep in 0..batches.min(20) + 2 {
        let started = Instant::now();
        buffers.par_iter_mut().for_each(|b| {
            b.a.copy_from_slice(&b.template);
            bernoulli_terms(&mut b.a, &mut b.s, Some(&b.u), &mut b.terms);
            std::hint::black_box(&b.terms);
        });
        if rep >= 2 {
            kernel_s.push(started.elapsed().as_secs_f64());
        }
    }
    let mean_step = step_s.iter().sum::<f64>() / step_s.len() as f64;
    let step = median(step_s);
    let mm = median(matmul_s);
    let kernel = median(kernel_s);
    let epoch_batches = data.train.n_samples().div_ceil(t.batch_size) as f64;
    crate::out!(
        "step (median):          {:>9.3} ms  = {:>8.0} data points/s",
        step * 1e3,
        b as f64 / step
    );
    crate::out!(
        "step (mean):            {:>9.3} ms  (includes every Fisher refresh)",
        mean_step * 1e3
    );
    crate::out!(
        "projected epoch:        {:>9.2} s   ({} points)",
        step * epoch_batches,
        data.train.n_samples()
    );
    crate::out!(
        "matrix products alone:  {:>9.3} ms  ({:>4.1}% of the step; {:.2} GFLOP per step as dense products, {:.0} GFLOP/s equivalent)",
        mm * 1e3,
        100.0 * mm / step,
        flops / 1e9,
        flops / mm / 1e9
    );
    // Each distinct operand once: (pass, level, per point) → fraction of ones.
    let mut seen: Vec<(Phase, usize, bool)> = Vec::new();
    let mut parts = Vec::new();
    for product in &list {
        let key = (product.phase, product.level, product.per_point);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let name = match (product.phase, product.per_point) {
            (_, true) => "data".to_string(),
            (Phase::Wake, false) => format!("wake h{}", product.level),
            (Phase::Dream, false) if product.level == 0 => "dreamt x".to_string(),
            (Phase::Dream, false) => format!("dream h{}", product.level),
        };
        parts.push(format!("{name} {:.2}", density(product, &operands)));
    }
    crate::out!("fraction of ones:       {}", parts.join(", "));
    crate::out!(
        "elementwise alone:      {:>9.3} ms  ({:>4.1}% of the step; sigmoid, softplus, sampling)",
        kernel * 1e3,
        100.0 * kernel / step
    );
    crate::out!(
        "rest:                   {:>9.3} ms  ({:>4.1}%: random numbers, copies, reductions, optimizer)",
        (step - mm - kernel) * 1e3,
        100.0 * (step - mm - kernel) / step
    );
    Ok(())
}
