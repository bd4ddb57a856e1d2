//! ELBO = sum of entropies at a stationary point: PPCA fitted by EM in the Trainer, with the
//! gap between the ELBO and its entropy sum shrinking as EM converges.
//!
//! cargo run --release -p helmholtz --example ppca_entropy_sum

use std::sync::atomic::AtomicBool;

use faer::Mat;
use helmholtz::prelude::*;

/// Prints the ELBO, the entropy sum and their gap after every 10th EM step.
struct Gap<'a>(faer::MatRef<'a, f64>);

impl Observer<LinearGaussian> for Gap<'_> {
    fn on_epoch(
        &mut self,
        model: &LinearGaussian,
        _: &mut EpochRecord,
        state: &mut TrainState,
        _: &mut dyn FnMut(&str),
    ) -> helmholtz::Result<Control> {
        if state.step.is_multiple_of(10) {
            let (means, covariance) = model.posteriors(self.0)?;
            let elbo = model.elbo(self.0, means.as_ref(), covariance.as_ref())?;
            let sum = model.entropy_sum(covariance.as_ref(), elbo)?;
            println!(
                "EM step {:>3}: ELBO {:.6}, entropy sum {:.6}, gap {:.2e}",
                state.step,
                sum.elbo,
                sum.entropy_sum(),
                sum.gap()
            );
        }
        Ok(Control::Continue)
    }
}

fn main() -> helmholtz::Result<()> {
    // The embedded digits as continuous data in [0, 1], one image per column.
    let digits = embedded_digits_splits().train;
    let x = Mat::from_fn(digits.dim(), digits.n_samples(), |r, c| {
        f64::from(digits.x[(r, c)])
    });
    let mut model = LinearGaussian::random(x.as_ref(), 5, false, 0)?;
    let trainer = Trainer {
        epochs: 100,
        batch_size: x.ncols(),
        ..Trainer::default()
    };
    let source = IndicesOnly {
        n_points: x.ncols(),
    };
    let mut em = Em { x: x.clone() };
    let stop = AtomicBool::new(false);
    let mut watch = Gap(x.as_ref());
    trainer.fit(
        &mut model,
        &mut em,
        &source,
        &mut TrainState::default(),
        &mut [&mut watch],
        &mut NoCheckpoints,
        &stop,
    )?;
    Ok(())
}
