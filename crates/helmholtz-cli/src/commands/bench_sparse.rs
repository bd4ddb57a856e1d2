//! `helmholtz bench` on a sparse-coding bars config: the cost of one objective-and-gradient
//! evaluation of the entropy objective (every parameter: the dictionary and each point's
//! posterior, as the full-batch L-BFGS fit evaluates it), and of one L-BFGS push and direction
//! with a full memory of the config's history and precision, over the entries the fit optimises.
//! Medians over `evaluations` repetitions.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use helmholtz::data::synthetic::bars;
use helmholtz::math::rng::Stream;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::objectives::sparse_coding::entropy_objective;
use helmholtz::optim::quasi_newton::{HistoryElement, HistoryPrecision, LbfgsMemory};
use helmholtz::train::sparse_coding::optimised_len;
use helmholtz_experiments::sparse::SparseConfig;

use super::bench::median;

/// Times the bars config at `path` (its data and model at the config's seed).
pub fn run(path: &Path, evaluations: usize, overrides: &[String]) -> Result<()> {
    let config = SparseConfig::load(path, overrides)?;
    if config.data.source != "bars" {
        bail!(
            "{}: helmholtz bench times sparse coding on bars (data.source = \"bars\"); this config has data.source = {:?}",
            path.display(),
            config.data.source
        );
    }
    let seed = config.seed;
    let data = bars(config.data.side, config.data.n, config.data.noise, seed);
    let (d, n, h) = (data.x.nrows(), data.x.ncols(), config.model.n_latents);
    let mut model = SparseCoding::new(d, h, n, config.model.posterior.per_point(), seed)?
        .with_scale_param(config.model.scale_param);
    model.scale_floor = config.model.scale_floor;
    let size = model.theta.len();
    let mut grad = vec![0.0; size];
    let threads = rayon::current_num_threads();
    // The fit's L-BFGS vectors leave out the upper triangles of full posteriors' factors.
    let optimised = optimised_len(&model);
    println!(
        "sparse coding on bars: D = {d}, H = {h}, N = {n}, {:?} posteriors, {size} parameters ({optimised} optimised), {threads} threads",
        config.model.posterior
    );
    let mut times = Vec::with_capacity(evaluations);
    let mut value = 0.0;
    for _ in 0..evaluations.max(1) {
        let start = Instant::now();
        let terms = entropy_objective(&model, data.x.as_ref(), 1.0, Some(&mut grad))?;
        times.push(start.elapsed().as_secs_f64());
        value = terms.objective(1.0);
    }
    let evaluation = median(times);
    println!(
        "objective and gradient: {:.3} ms per evaluation (median of {}; L^H = {value:.6} at the start)",
        evaluation * 1e3,
        evaluations.max(1)
    );
    // One push and one direction of a full memory, as in every iteration of a fit.
    let history = config.train.history;
    let precision = config.train.history_precision;
    let direction = match precision {
        HistoryPrecision::F64 => {
            push_and_direction::<f64>(optimised, history, seed, &grad[..optimised], evaluations)
        }
        HistoryPrecision::F32 => {
            push_and_direction::<f32>(optimised, history, seed, &grad[..optimised], evaluations)
        }
    };
    println!(
        "L-BFGS push and direction over the {optimised} optimised entries (history {history}, stored as {precision:?}): {:.3} ms; an iteration with one evaluation: {:.3} ms",
        direction * 1e3,
        (direction + evaluation) * 1e3
    );
    Ok(())
}

/// Median seconds of one push and one direction of a full memory of `history` pairs of length
/// `size`, stored as T: pairs drawn at random (their values do not change the work).
fn push_and_direction<T: HistoryElement>(
    size: usize,
    history: usize,
    seed: u64,
    grad: &[f64],
    evaluations: usize,
) -> f64 {
    let mut memory = LbfgsMemory::<T>::new(size, history);
    let mut rng = Stream::new(seed, &[]);
    let zero = vec![0.0; size];
    let mut pairs = Vec::with_capacity(2);
    for _ in 0..2 {
        let s: Vec<f64> = (0..size).map(|_| rng.normal()).collect();
        let y: Vec<f64> = s.iter().map(|v| v * (1.0 + rng.uniform_f64())).collect();
        pairs.push((s, y));
    }
    let mut direction = vec![0.0; size];
    while memory.len() < history {
        let (s, y) = &pairs[memory.len() % 2];
        memory.push(s, &zero, y, &zero);
        memory.direction(grad, &mut direction);
    }
    let mut times = Vec::with_capacity(evaluations);
    for e in 0..evaluations.max(1) {
        let (s, y) = &pairs[e % 2];
        let start = Instant::now();
        memory.push(s, &zero, y, &zero);
        memory.direction(grad, &mut direction);
        times.push(start.elapsed().as_secs_f64());
    }
    median(times)
}
