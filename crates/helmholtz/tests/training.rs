//! End-to-end training through the run API: the 3×3 toy reaches its target, resumed runs are
//! bit-for-bit identical to uninterrupted ones, and diverging runs keep their last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use helmholtz::models::HelmholtzMachine;
use helmholtz::optim::Update;
use helmholtz::run::{
    Config, Control, Observer, Outcome, Run, Silent, Slot, Split, StepRecord, TrainState,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("helmholtz-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(text: &str, overrides: &[&str]) -> Config {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::parse(text, &overrides, Path::new("test.toml")).unwrap()
}

const TOY: &str = r#"
name = "lines3x3"
seed = 0
[data]
source = "lines3x3"
binarize = "none"
[model]
hidden = [6, 6]
[train]
algorithm = "rws"
k = 10
batch_size = 10
epochs = 8
[optimizer]
lr = 0.01
rule = { kind = "adam" }
[eval]
every = 0
exact_kl = true
"#;

/// KL(true ‖ model) after each epoch of the toy config with `overrides`.
fn toy_kl(name: &str, overrides: &[&str]) -> Vec<f64> {
    let dir = scratch(name);
    let mut run = Run::create(config(TOY, overrides), &dir).unwrap();
    assert_eq!(
        run.train(&mut Silent, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kl_true_model"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

#[test]
fn rws_learns_the_3x3_lines_toy_to_within_005_nats() {
    let kl = toy_kl("toy-rws", &[]);
    assert_eq!(kl.len(), 8);
    assert!(
        kl[0] > 0.2,
        "the first epoch should still be far off: {kl:?}"
    );
    assert!(
        *kl.last().unwrap() <= 0.05,
        "KL(true ‖ model) after 8 epochs: {kl:?}"
    );
}

#[test]
fn wake_sleep_and_bihm_learn_the_toy_too() {
    // Measured from seed 0: WS 2.62 → 0.18, BiHM 1.14 → 0.020 over 8 epochs.
    let ws = toy_kl("toy-ws", &["train.algorithm=\"ws\"", "train.k=1"]);
    assert!(
        *ws.last().unwrap() < 0.3 && ws[0] > 5.0 * ws[7],
        "WS: {ws:?}"
    );
    let bihm = toy_kl("toy-bihm", &["train.algorithm=\"bihm\""]);
    assert!(
        *bihm.last().unwrap() < 0.05 && bihm[0] > 5.0 * bihm[7],
        "BiHM: {bihm:?}"
    );
}

const DIGITS: &str = r#"
name = "digits"
seed = 3
[data]
source = "digits"
[model]
hidden = [20, 5]
[train]
algorithm = "rws"
k = 5
batch_size = 50
epochs = 3
chunk_points = 10
[optimizer]
lr = 0.003
rule = { kind = "adam" }
[eval]
every = 1
k = 20
max_points = 50
"#;

/// Requests a stop after a given number of batches, like Ctrl-C would.
struct StopAfter<'a> {
    batches: usize,
    seen: usize,
    flag: &'a AtomicBool,
}

impl Observer<HelmholtzMachine> for StopAfter<'_> {
    fn on_step(&mut self, _info: &StepRecord, _state: &TrainState) -> Control {
        self.seen += 1;
        if self.seen == self.batches {
            self.flag.store(true, Ordering::SeqCst);
        }
        Control::Continue
    }
}

#[test]
fn resumed_runs_equal_uninterrupted_runs_bit_for_bit() {
    // NRWS refreshes its Fisher factors every 7 steps, so the interruption (step 40) and the
    // extension (step 28) both fall between refreshes: the resumed run must refit the same factors.
    for algorithm in ["rws", "bihm", "nrws"] {
        let whole_dir = scratch(&format!("whole-{algorithm}"));
        let set = match algorithm {
            "nrws" => "train.natural={ alpha = 0.2, refresh_every = 7 }".to_string(),
            _ => format!("train.algorithm=\"{algorithm}\""),
        };
        let mut whole = Run::create(config(DIGITS, &[&set]), &whole_dir).unwrap();
        whole.train(&mut Silent, &AtomicBool::new(false)).unwrap();

        // Interrupted mid-epoch (batch 40 of 28 per epoch is in epoch 2), then resumed; then a
        // run that first trains 1 epoch and is extended to 3 with --set train.epochs=3.
        let parts_dir = scratch(&format!("parts-{algorithm}"));
        let mut first = Run::create(config(DIGITS, &[&set]), &parts_dir).unwrap();
        let flag = AtomicBool::new(false);
        let outcome = first
            .train(
                &mut StopAfter {
                    batches: 40,
                    seen: 0,
                    flag: &flag,
                },
                &flag,
            )
            .unwrap();
        assert_eq!(outcome, Outcome::Interrupted);
        assert!(
            first.state.epoch == 1 && first.state.batch == 12,
            "{:?}",
            first.state
        );
        let first_state = first.state.clone();
        drop(first); // releases the run's lock
        let mut resumed = Run::resume(&parts_dir, &[]).unwrap();
        assert_eq!(resumed.state, first_state);
        resumed.train(&mut Silent, &AtomicBool::new(false)).unwrap();
        assert_eq!(
            resumed.model.params, whole.model.params,
            "{algorithm}: interrupted + resumed"
        );
        assert_eq!(
            resumed.algorithm.inner.optimizer.state(),
            whole.algorithm.inner.optimizer.state()
        );

        let short_dir = scratch(&format!("short-{algorithm}"));
        let mut short = Run::create(config(DIGITS, &[&set, "train.epochs=1"]), &short_dir).unwrap();
        short.train(&mut Silent, &AtomicBool::new(false)).unwrap();
        drop(short);
        let mut extended = Run::resume(&short_dir, &["train.epochs=3".to_string()]).unwrap();
        extended
            .train(&mut Silent, &AtomicBool::new(false))
            .unwrap();
        assert_eq!(
            extended.model.params, whole.model.params,
            "{algorithm}: extended"
        );
        for dir in [whole_dir, parts_dir, short_dir] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}

/// The same bits for any thread count, also for the natural-gradient versions under Nadam and
/// Adam (the NRWS comparison runs its arms with one thread each, two at a time).
#[test]
fn training_is_identical_for_any_thread_count() {
    let natural = "train.natural={ alpha = 0.2, refresh_every = 7 }";
    let cases: [&[&str]; 3] = [
        &[],
        &[
            natural,
            "optimizer.rule={ kind = \"nadam\" }",
            "optimizer.lr=0.001",
        ],
        &[
            natural,
            "train.algorithm=\"bihm\"",
            "optimizer.rule={ kind = \"adam\" }",
            "optimizer.lr=0.001",
        ],
    ];
    let mut trained = Vec::new();
    for overrides in cases {
        let train_with = |threads: usize| {
            let dir = scratch(&format!("threads-{threads}"));
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let all = [&["train.epochs=1", "eval.every=0"], overrides].concat();
            let mut run = Run::create(config(DIGITS, &all), &dir).unwrap();
            pool.install(|| run.train(&mut Silent, &AtomicBool::new(false)).unwrap());
            std::fs::remove_dir_all(&dir).unwrap();
            run.model.params
        };
        let one = train_with(1);
        assert_eq!(one, train_with(2), "{overrides:?}");
        assert_eq!(one, train_with(3), "{overrides:?}");
        trained.push(one);
    }
    // The overrides took effect: three different trainings.
    assert!(trained[0] != trained[1] && trained[1] != trained[2] && trained[0] != trained[2]);
}

#[test]
fn a_diverging_run_stops_with_a_clear_error_and_keeps_its_last_checkpoint() {
    let dir = scratch("diverge");
    let mut run = Run::create(
        config(
            DIGITS,
            &["optimizer.lr=1e38", "optimizer.rule={ kind = \"sgd\" }"],
        ),
        &dir,
    )
    .unwrap();
    let outcome = run.train(&mut Silent, &AtomicBool::new(false)).unwrap();
    assert!(
        matches!(&outcome, Outcome::Diverged(m) if m.contains("last good checkpoint")),
        "{outcome:?}"
    );
    drop(run);
    // The checkpoint on disk is the last good one: it loads and holds finite parameters.
    let reopened = Run::open(&dir).unwrap();
    assert!(reopened.model.params.first_non_finite().is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_holding_non_finite_values_is_an_error_not_an_infinite_estimate() {
    let dir = scratch("nonfinite");
    let mut run = Run::create(config(TOY, &["train.epochs=1"]), &dir).unwrap();
    run.train(&mut Silent, &AtomicBool::new(false)).unwrap();
    let path = dir.join("checkpoints/last/params.safetensors");
    let mut params = helmholtz::run::checkpoint::read_all_tensors(&path).unwrap();
    params.tensors[0].data[0] = f32::NAN;
    helmholtz::run::checkpoint::write_tensors(&path, &params).unwrap();
    let err = Run::open_checkpoint(&dir, Slot::Last)
        .err()
        .expect("a NaN checkpoint must not open")
        .to_string();
    assert!(
        err.contains("non-finite") && err.contains(&params.tensors[0].name),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn existing_runs_are_not_overwritten() {
    let dir = scratch("exists");
    Run::create(config(DIGITS, &[]), &dir).unwrap();
    let err = Run::create(config(DIGITS, &[]), &dir)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn early_stopping_ends_a_run_whose_validation_estimate_stops_improving() {
    // With a learning rate far below f32 resolution the parameters never change, so the second
    // validation estimate (same samples) equals the first: no improvement, patience 1 → stop.
    let dir = scratch("early");
    let overrides = [
        "optimizer.lr=1e-20",
        "optimizer.rule={ kind = \"sgd\" }",
        "eval.patience=1",
        "train.epochs=5",
    ];
    let mut run = Run::create(config(DIGITS, &overrides), &dir).unwrap();
    let outcome = run.train(&mut Silent, &AtomicBool::new(false)).unwrap();
    assert_eq!(outcome, Outcome::EarlyStopped);
    assert_eq!(run.state.epoch, 2);
    assert!(run.state.finished);
    run.finish(&outcome, true, &mut |_| {}).unwrap();
    drop(run);
    let summary = dir.join("summary.json");
    // A finished run resumed without more epochs does nothing more, and stays early-stopped.
    let mut resumed = Run::resume(&dir, &[]).unwrap();
    assert_eq!(
        resumed.train(&mut Silent, &AtomicBool::new(false)).unwrap(),
        Outcome::EarlyStopped
    );
    assert_eq!(resumed.state.epoch, 2);
    assert!(summary.exists());
    drop(resumed);
    // Raising the patience continues it: one evaluation without improvement so far, so with
    // patience 3 it stops again after two more epochs. Until then it has no summary.
    let mut resumed = Run::resume(&dir, &["eval.patience=3".to_string()]).unwrap();
    assert!(!resumed.state.finished);
    assert!(!summary.exists());
    assert_eq!(
        resumed.train(&mut Silent, &AtomicBool::new(false)).unwrap(),
        Outcome::EarlyStopped
    );
    assert_eq!(resumed.state.epoch, 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nrws_beats_rws_at_equal_epochs_on_the_toy_with_plain_sgd() {
    // Plain SGD, lr 0.1, seed 0: measured KL after epochs 1–2, RWS 1.53, 0.84; NRWS (α = 0.2,
    // factors refreshed every step) 0.34, 0.13.
    let sgd = [
        "optimizer.rule={ kind = \"sgd\" }",
        "optimizer.lr=0.1",
        "train.epochs=2",
    ];
    let rws = toy_kl("toy-sgd-rws", &sgd);
    let natural = [
        sgd[0],
        sgd[1],
        sgd[2],
        "train.natural={ alpha = 0.2, refresh_every = 1 }",
    ];
    let nrws = toy_kl("toy-sgd-nrws", &natural);
    assert!(
        nrws[0] < 0.5 * rws[0] && nrws[1] < 0.5 * rws[1],
        "RWS {rws:?}, NRWS {nrws:?}"
    );
}

#[test]
fn a_resume_that_collapses_the_objective_stops_and_keeps_a_usable_best_checkpoint() {
    let dir = scratch("collapse");
    let mut run = Run::create(config(DIGITS, &[]), &dir).unwrap();
    assert_eq!(
        run.train(&mut Silent, &AtomicBool::new(false)).unwrap(),
        Outcome::Completed
    );
    drop(run);
    let best = Run::open_checkpoint(&dir, Slot::Best).unwrap();
    let before = best.log_likelihood(Split::Test, 50, Some(50)).unwrap();
    let best_step = best.state.step;
    drop(best);

    let overrides = ["optimizer.lr=1e6".to_string(), "train.epochs=6".to_string()];
    let mut resumed = Run::resume(&dir, &overrides).unwrap();
    assert!(
        resumed
            .changes
            .iter()
            .any(|c| c.starts_with("optimizer.lr:")),
        "{:?}",
        resumed.changes
    );
    let outcome = resumed.train(&mut Silent, &AtomicBool::new(false)).unwrap();
    assert!(
        matches!(&outcome, Outcome::Diverged(m) if m.contains("last good checkpoint")),
        "{outcome:?}"
    );
    drop(resumed);
    let best = Run::open_checkpoint(&dir, Slot::Best).unwrap();
    assert_eq!(best.state.step, best_step);
    assert_eq!(
        best.log_likelihood(Split::Test, 50, Some(50)).unwrap(),
        before
    );
    let last = Run::open(&dir).unwrap();
    assert!(last.model.params.first_non_finite().is_none());
    assert_eq!(
        last.state.epoch, 3,
        "the last good checkpoint is the one resumed from"
    );
    let history = std::fs::read_to_string(dir.join(helmholtz::run::HISTORY_FILE)).unwrap();
    assert!(history.contains("optimizer.lr=1e6"), "{history}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resume_may_not_change_the_model_and_a_held_run_refuses_a_second_process() {
    let dir = scratch("refusals");
    let run = Run::create(config(DIGITS, &["train.epochs=1"]), &dir).unwrap();
    let err = Run::resume(&dir, &[]).err().unwrap().to_string();
    assert!(
        err.contains("in use by process") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    drop(run);
    let err = Run::resume(&dir, &["model.hidden=[7, 5]".to_string()])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.hidden"), "{err}");
    assert!(!dir.join(helmholtz::run::HISTORY_FILE).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_run_is_not_created_when_its_config_or_data_fail() {
    let dir = scratch("no-stub");
    let missing = "data.train=\"no-such-file.csv\"";
    let err = Run::create(config(DIGITS, &["data.source=\"csv\"", missing]), &dir)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no-such-file.csv"), "{err}");
    assert!(
        !dir.exists(),
        "nothing is created before config and data validate"
    );
}
