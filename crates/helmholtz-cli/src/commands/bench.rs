//! `helmholtz bench`: RWS training throughput and the share of time in matrix products versus
//! elementwise (sigmoid / softplus / sampling) work.
//!
//! The step is timed as a whole; then the same matrix products (same shapes, same parallel
//! chunking) and the same elementwise kernels are timed alone. Medians over the timed batches.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use helmholtz::math::numerics::bernoulli_terms;
use helmholtz::math::rng::Stream;
use helmholtz::models::HelmholtzMachine;
use helmholtz::run::Config;
use helmholtz::train::{Batch, HmLearner, StepContext, Variant};
use rayon::prelude::*;

/// Destination, left and right operand of one timed matrix product.
type Product = (Mat<f32>, Mat<f32>, Mat<f32>);

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

/// (rows, inner, cols) of every matrix product one chunk of an RWS step performs.
fn products(
    sizes: &[usize],
    points: usize,
    k: usize,
    variant: Variant,
) -> Vec<(usize, usize, usize)> {
    let n = points * k;
    let layers = sizes.len() - 1;
    let mut list = vec![(sizes[1], sizes[0], points)]; // q layer 0 once per point
    for l in 1..layers {
        list.push((sizes[l + 1], sizes[l], n)); // wake q forward
    }
    for l in 0..layers {
        list.push((sizes[l], sizes[l + 1], n)); // p scores of wake samples
        list.push((sizes[l], n, sizes[l + 1])); // p gradient
    }
    if variant != Variant::Ws {
        list.push((sizes[1], points, sizes[0])); // q wake gradient, layer 0 (reduced over k)
        for l in 1..layers {
            list.push((sizes[l + 1], n, sizes[l]));
        }
    }
    if variant != Variant::Bihm {
        for l in 0..layers {
            list.push((sizes[l], sizes[l + 1], n)); // dream
            list.push((sizes[l + 1], sizes[l], n)); // q scores of dreams
            list.push((sizes[l + 1], n, sizes[l])); // q sleep gradient
        }
    }
    list
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
    let first = data.train.range(0, b);
    // Under dynamic binarisation the training set holds grey levels, binarised anew each epoch
    // as the trainer does; one draw of them is timed here.
    let first = if data.dynamic {
        helmholtz::data::binarize_fixed(&first, config.data.binarize_seed)
    } else {
        first
    };
    let batch = first.to_columns();
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
    let operands: Vec<Vec<Product>> = chunk_points
        .iter()
        .map(|&p| {
            products(&sizes, p, t.k, t.algorithm)
                .into_iter()
                .map(|(m, k, n)| {
                    (
                        Mat::zeros(m, n),
                        Mat::from_fn(m, k, |i, j| ((i + j) % 7) as f32 * 0.01),
                        Mat::from_fn(k, n, |i, j| ((i * j) % 2) as f32),
                    )
                })
                .collect()
        })
        .collect();
    let mut operands = operands;
    let flops: f64 = chunk_points
        .iter()
        .flat_map(|&p| products(&sizes, p, t.k, t.algorithm))
        .map(|(m, k, n)| 2.0 * (m * k * n) as f64)
        .sum();
    let mut matmul_s = Vec::new();
    for rep in 0..batches.min(20) + 2 {
        let started = Instant::now();
        operands.par_iter_mut().for_each(|chunk| {
            for (dst, lhs, rhs) in chunk.iter_mut() {
                matmul(
                    dst.as_mut(),
                    Accum::Replace,
                    lhs.as_ref(),
                    rhs.as_ref(),
                    1.0f32,
                    Par::Seq,
                );
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
        "matrix products alone:  {:>9.3} ms  ({:>4.1}% of the step; {:.2} GFLOP per step, {:.0} GFLOP/s)",
        mm * 1e3,
        100.0 * mm / step,
        flops / 1e9,
        flops / mm / 1e9
    );
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
