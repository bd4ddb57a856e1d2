//! Train an RWS Helmholtz machine on an in-memory binary matrix through the Trainer, and
//! estimate its log-likelihood by importance sampling.
//!
//! cargo run --release -p helmholtz --example rws_own_data

use std::sync::atomic::AtomicBool;

use helmholtz::prelude::*;

fn main() -> helmholtz::Result<()> {
    // Your data: 16-dimensional binary points, one per column (here two noisy prototypes).
    let (dim, n) = (16, 1000);
    let mut rng = Stream::new(1, &[]);
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..dim).map(move |j| ((i % 2 == 0) == (j < 8)) as u8))
        .map(|bit| (bit == 1) ^ (rng.uniform_f64() < 0.05))
        .map(|bit| bit as u8 as f32)
        .collect();
    let data = Columns { values, dim };

    let mut model = HelmholtzMachine::new(&[dim, 8, 2], WeightInit::GlorotNormal, -1.0, 0)?;
    let gradients = WakeSleep::new(WakeSleepConfig::default())?; // RWS, K = 10
    let mut rws = HmStep::new(gradients, Optimizer::adam(3e-3, &model.params)?, &model);
    let trainer = Trainer {
        seed: 0,
        epochs: 30,
        batch_size: 50,
        ..Trainer::default()
    };
    let mut state = TrainState::default();
    let stop = AtomicBool::new(false);
    trainer.fit(
        &mut model,
        &mut rws,
        &data,
        &mut state,
        &mut [],
        &mut NoCheckpoints,
        &stop,
    )?;

    let per_point = importance_log_likelihood(&model, &data.values, n, 0, IsConfig::new(1000, 7))?;
    let mean = per_point.iter().sum::<f64>() / n as f64;
    println!(
        "{} steps; log-likelihood {mean:.3} nats per point",
        state.step
    );
    Ok(())
}
