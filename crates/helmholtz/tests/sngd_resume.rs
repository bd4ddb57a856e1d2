//! SNGD, Adam-root and MCEF runs on the Trainer resume bit for bit: a run interrupted in the
//! middle of an epoch, checkpointed through JSON and resumed in a fresh method ends exactly where
//! an uninterrupted run ends.

use std::sync::atomic::{AtomicBool, Ordering};

use faer::Mat;
use helmholtz::data::batches::Columns;
use helmholtz::dist::skew::{SkewGradient, SkewNormal};
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
use helmholtz::math::rng::Stream;
use helmholtz::objectives::targets::skew_normal::SkewNormalNll;
use helmholtz::optim::sngd::{AdamRoot, LineSearch, Mcef, Method, MethodState, Root, SngdMean};
use helmholtz::train::sngd::MethodSteps;
use helmholtz::train::trainer::*;
use helmholtz::{Error, Result};

const D: usize = 3;

/// Keeps the last checkpoint as JSON text, as a run directory would store it.
#[derive(Default)]
struct JsonStore {
    last: Option<(String, TrainState)>,
}

impl<M: Method, A> CheckpointStore<M, A> for JsonStore {
    fn save(&mut self, slot: Slot, method: &M, _: &A, state: &TrainState) -> Result<()> {
        if slot == Slot::Last {
            let text = serde_json::to_string(&method.state())
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            self.last = Some((text, state.clone()));
        }
        Ok(())
    }
}

/// Raises the stop flag after step `at`.
struct StopAt<'a>(u64, &'a AtomicBool);

impl<M> Observer<M> for StopAt<'_> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        if record.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
        Control::Continue
    }
}

fn data() -> Columns<f64> {
    let truth = SkewNormal::new(
        vec![1.0, -1.0, 0.5],
        Mat::from_fn(D, D, |r, c| if r == c { 1.0 } else { 0.3 }),
        vec![2.0, 0.0, -1.0],
    )
    .unwrap();
    let rows = truth.sample(300, &mut Stream::new(3, &[])).unwrap();
    Columns {
        values: (0..rows.nrows())
            .flat_map(|i| (0..D).map(move |j| (i, j)))
            .map(|(i, j)| rows[(i, j)])
            .collect(),
        dim: D,
    }
}

/// 20 steps in epochs of 6, batches of 50 points drawn with replacement.
fn trainer() -> Trainer {
    Trainer {
        seed: 5,
        epochs: 4,
        batch_size: 50,
        sampling: Sampling::WithReplacement { steps_per_epoch: 6 },
        max_steps: Some(20),
        ..Trainer::default()
    }
}

fn fit<M: Method<Point = SkewNormal, Gradient = SkewGradient>>(
    method: &mut M,
    state: &mut TrainState,
    observers: &mut [&mut dyn Observer<M>],
    store: &mut JsonStore,
    stop: &AtomicBool,
) -> Outcome {
    let mut steps = MethodSteps::new(|m: &mut M, batch: &Batch<'_, f64>, _: &StepContext| {
        let rows = batch.mat().transpose().to_owned();
        m.step(&SkewNormalNll {
            points: rows.as_ref(),
        })
    });
    trainer()
        .fit(method, &mut steps, &data(), state, observers, store, stop)
        .unwrap()
}

fn resumes_exactly<M: Method<Point = SkewNormal, Gradient = SkewGradient>>(make: impl Fn() -> M) {
    let start = make().state();
    let mut whole = make();
    let mut state = TrainState::default();
    let outcome = fit(
        &mut whole,
        &mut state,
        &mut [],
        &mut JsonStore::default(),
        &AtomicBool::new(false),
    );
    assert_eq!((outcome, state.step), (Outcome::Completed, 20));
    let whole = whole.state();
    assert_ne!(whole, start, "the method moved");

    let (flag, mut store) = (AtomicBool::new(false), JsonStore::default());
    let mut part = make();
    let outcome = fit(
        &mut part,
        &mut TrainState::default(),
        &mut [&mut StopAt(9, &flag)],
        &mut store,
        &flag,
    );
    assert_eq!(outcome, Outcome::Interrupted);
    let (text, mut state) = store.last.take().unwrap();
    assert_eq!((state.epoch, state.batch, state.step), (1, 3, 9));
    let saved: MethodState = serde_json::from_str(&text).unwrap();
    let mut resumed = make();
    resumed.restore(&saved).unwrap();
    let outcome = fit(
        &mut resumed,
        &mut state,
        &mut [],
        &mut store,
        &AtomicBool::new(false),
    );
    assert_eq!((outcome, state.step), (Outcome::Completed, 20));
    assert_eq!(resumed.state(), whole);

    // A state of another shape is refused and leaves the method as it was.
    let mut other = make();
    let mut wrong = saved.clone();
    for values in wrong.values.values_mut() {
        values.push(0.0);
    }
    assert!(other.restore(&wrong).is_err());
    assert_eq!(other.state(), start);
}

fn search() -> LineSearch {
    LineSearch::Backtracking {
        start: 0.3,
        halvings: 20,
    }
}

#[test]
fn sngd_with_adam_for_lambda_resumes_bit_for_bit() {
    resumes_exactly(|| {
        let start = Gaussians::single(vec![0.0; D], Mat::identity(D, D));
        SngdMean::<SkewNormal>::new(
            GaussianMixture::single(D),
            start,
            vec![0.1; D],
            0.01,
            search(),
        )
        .unwrap()
    });
}

#[test]
fn adam_with_a_covariance_root_resumes_bit_for_bit() {
    resumes_exactly(|| {
        AdamRoot::<SkewNormal>::new(
            GaussianMixture::single(D),
            Root::Covariance,
            vec![0.0],
            &[vec![0.0; D]],
            &[Mat::identity(D, D)],
            &[0.1; D],
            0.01,
        )
        .unwrap()
    });
}

#[test]
fn mcef_resumes_bit_for_bit() {
    resumes_exactly(|| {
        let q = SkewNormal::new(vec![0.0; D], Mat::identity(D, D), vec![0.1; D]).unwrap();
        Mcef::new(&q, search()).unwrap()
    });
}
