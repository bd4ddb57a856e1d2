//! Natural-gradient RWS (NRWS): the RWS gradients preconditioned by the exact per-unit Fisher
//! blocks of every SBN layer, with plain SGD, against RWS with the same SGD, on the embedded
//! digits, in the Trainer.
//!
//! cargo run --release -p helmholtz --example nrws

use std::sync::atomic::AtomicBool;

use helmholtz::prelude::*;

fn main() -> helmholtz::Result<()> {
    let splits = embedded_digits_splits();
    let train = binarize_fixed(&splits.train, 0);
    let test = binarize_fixed(&splits.test, 0);
    let data = Columns {
        values: train.to_columns(),
        dim: train.dim(),
    };
    let sgd = OptimizerConfig::Sgd;
    for natural in [
        None,
        Some(NaturalConfig {
            refresh_every: 50,
            ..NaturalConfig::default()
        }),
    ] {
        let name = if natural.is_some() { "NRWS" } else { "RWS" };
        let mut model = HelmholtzMachine::new(&[64, 32, 8], WeightInit::GlorotNormal, -1.0, 0)?;
        let optimizer = Optimizer::new(sgd.clone(), 0.02, Schedule::Constant, &model.params)?;
        let rws = HmStep::new(
            WakeSleep::new(WakeSleepConfig::default())?,
            optimizer,
            &model,
        );
        // RWS wrapped with no preconditioner (the plain gradient) or the Fisher blocks.
        let preconditioner = natural.map(FisherPreconditioner::new).transpose()?;
        let mut step = Natural::new(rws, preconditioner);
        let trainer = Trainer {
            seed: 0,
            epochs: 5,
            batch_size: 20,
            ..Trainer::default()
        };
        let stop = AtomicBool::new(false);
        let mut state = TrainState::default();
        trainer.fit(
            &mut model,
            &mut step,
            &data,
            &mut state,
            &mut [],
            &mut NoCheckpoints,
            &stop,
        )?;
        let n = test.n_samples();
        let ll =
            importance_log_likelihood(&model, &test.to_columns(), n, 0, IsConfig::new(500, 1))?;
        println!(
            "{name}: test log-likelihood {:.3} nats after {} epochs",
            ll.iter().sum::<f64>() / n as f64,
            state.epoch
        );
    }
    Ok(())
}
