use super::*;
use crate::data::batches::Columns;

/// Adds each batch's points to the model and counts steps; fails at `fail_at`.
struct Sum {
    fail_at: Option<u64>,
    objective: f64,
}
impl Algorithm<Vec<f64>> for Sum {
    type Scalar = f64;
    fn step(
        &mut self,
        model: &mut Vec<f64>,
        batch: &Batch<'_, f64>,
        ctx: &StepContext,
    ) -> Result<StepStats> {
        if Some(ctx.step) == self.fail_at {
            return Err(Error::Diverged("boom".into()));
        }
        model.extend_from_slice(batch.values);
        Ok(StepStats {
            objective_sum: self.objective * batch.n_points() as f64,
            points: batch.n_points(),
        })
    }
}

/// Keeps copies of what it was asked to save.
#[derive(Default)]
struct Memory {
    last: Option<(Vec<f64>, TrainState)>,
    best: usize,
}
impl CheckpointStore<Vec<f64>, Sum> for Memory {
    fn save(&mut self, slot: Slot, m: &Vec<f64>, _: &Sum, s: &TrainState) -> Result<()> {
        match slot {
            Slot::Last => self.last = Some((m.clone(), s.clone())),
            Slot::Best => self.best += 1,
        }
        Ok(())
    }
}

struct StopAt<'a>(u64, &'a AtomicBool);
impl Observer<Vec<f64>> for StopAt<'_> {
    fn on_step(&mut self, record: &StepRecord, _: &TrainState) -> Control {
        if record.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
        Control::Continue
    }
}

fn data() -> Columns<f64> {
    Columns {
        values: (0..10).map(f64::from).collect(),
        dim: 1,
    }
}

fn trainer() -> Trainer {
    Trainer {
        seed: 4,
        epochs: 3,
        batch_size: 3,
        checkpoint_every: 1,
        objective_name: "bound",
        ..Trainer::default()
    }
}

#[test]
fn an_interrupted_and_resumed_run_visits_the_same_batches_as_a_whole_one() {
    let mut algorithm = Sum {
        fail_at: None,
        objective: -1.0,
    };
    let (mut whole, mut state) = (Vec::new(), TrainState::default());
    let outcome = trainer()
        .fit(
            &mut whole,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [],
            &mut NoCheckpoints,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!((state.epoch, state.step, whole.len()), (3, 12, 30));

    let flag = AtomicBool::new(false);
    let mut store = Memory::default();
    let (mut part, mut state) = (Vec::new(), TrainState::default());
    let outcome = trainer()
        .fit(
            &mut part,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [&mut StopAt(6, &flag)],
            &mut store,
            &flag,
        )
        .unwrap();
    assert_eq!(outcome, Outcome::Interrupted);
    let (mut model, mut state) = store.last.clone().unwrap();
    assert_eq!((state.epoch, state.batch, state.step), (1, 2, 6));
    trainer()
        .fit(
            &mut model,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [],
            &mut store,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(model, whole);
    assert!(state.finished);
}

#[test]
fn sampling_with_replacement_draws_one_run_long_stream_and_resumes_mid_epoch() {
    let with_replacement = Trainer {
        sampling: Sampling::WithReplacement { steps_per_epoch: 4 },
        max_steps: Some(10),
        epochs: 5,
        ..trainer()
    };
    let mut algorithm = Sum {
        fail_at: None,
        objective: -1.0,
    };
    let (mut whole, mut state) = (Vec::new(), TrainState::default());
    let outcome = with_replacement
        .fit(
            &mut whole,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [],
            &mut NoCheckpoints,
            &AtomicBool::new(false),
        )
        .unwrap();
    // Epochs of 4, 4 and 2 steps: the step limit ends the third one and the run.
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!((state.epoch, state.step, state.finished), (3, 10, true));
    let mut stream = Stream::new(4, &[ids::SHUFFLE]);
    let expected: Vec<f64> = (0..30).map(|_| stream.below(10) as f64).collect();
    assert_eq!(whole, expected);

    let flag = AtomicBool::new(false);
    let mut store = Memory::default();
    let (mut part, mut state) = (Vec::new(), TrainState::default());
    with_replacement
        .fit(
            &mut part,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [&mut StopAt(6, &flag)],
            &mut store,
            &flag,
        )
        .unwrap();
    let (mut model, mut state) = store.last.clone().unwrap();
    assert_eq!((state.epoch, state.batch, state.step), (1, 2, 6));
    with_replacement
        .fit(
            &mut model,
            &mut algorithm,
            &data(),
            &mut state,
            &mut [],
            &mut store,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(model, whole);
    assert!(
        Trainer {
            sampling: Sampling::WithReplacement { steps_per_epoch: 0 },
            ..trainer()
        }
        .fit(
            &mut Vec::new(),
            &mut algorithm,
            &data(),
            &mut TrainState::default(),
            &mut [],
            &mut NoCheckpoints,
            &AtomicBool::new(false),
        )
        .is_err()
    );
}

#[test]
fn divergence_keeps_the_last_checkpoint_and_says_so() {
    let mut store = Memory::default();
    let (mut model, mut state) = (Vec::new(), TrainState::default());
    let outcome = trainer()
        .fit(
            &mut model,
            &mut Sum {
                fail_at: Some(5),
                objective: -1.0,
            },
            &data(),
            &mut state,
            &mut [],
            &mut store,
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(outcome, Outcome::Diverged("boom".into()));
    // Checkpoints at the start and after epoch 1 (4 steps); step 5 failed in epoch 2.
    assert_eq!(store.last.unwrap().1.step, 4);
}

#[test]
fn the_guard_stops_an_objective_that_collapses_while_finite() {
    struct Collapse;
    impl Algorithm<f64> for Collapse {
        type Scalar = f64;
        fn step(
            &mut self,
            m: &mut f64,
            b: &Batch<'_, f64>,
            ctx: &StepContext,
        ) -> Result<StepStats> {
            *m = if ctx.step < 4 { -10.0 } else { -1e6 };
            Ok(StepStats {
                objective_sum: *m * b.n_points() as f64,
                points: b.n_points(),
            })
        }
    }
    let mut guard = DivergenceGuard::default();
    let (mut m, mut state) = (0.0, TrainState::default());
    let outcome = Trainer {
        epochs: 10,
        batch_size: 1,
        ..Trainer::default()
    }
    .fit(
        &mut m,
        &mut Collapse,
        &data(),
        &mut state,
        &mut [&mut guard],
        &mut NoCheckpoints,
        &AtomicBool::new(false),
    )
    .unwrap();
    let Outcome::Diverged(message) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("collapsed"), "{message}");
    assert_eq!(state.step, 4 + 5, "stopped after patience batches");
}
