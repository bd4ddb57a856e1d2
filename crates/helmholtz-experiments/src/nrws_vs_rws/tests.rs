use super::*;
use std::sync::Arc;

fn digits_settings(epochs: usize) -> AlgorithmSettings {
    AlgorithmSettings {
        data: DataSource::Digits,
        epochs,
        k_eval: 100,
        refresh_every: 50,
        lr: 0.02,
        lrs: Vec::new(),
        rule: OptimizerConfig::Sgd,
        rules: Vec::new(),
        algorithms: Algorithm::ALL.to_vec(),
        hidden: None,
        batch: None,
    }
}

/// The typed configs are the ones the comparison wrote as TOML before.
#[test]
fn typed_configs_match_their_toml_form() {
    let settings =
        Settings::from_algorithms(&digits_settings(3), 1, PathBuf::from("unused")).unwrap();
    let text = r#"name = "nrws-diagonal-seed2"
        seed = 2
        [data]
        source = "digits"
        binarize = "fixed"
        [model]
        hidden = [100, 50, 10]
        [train]
        algorithm = "rws"
        k = 10
        batch_size = 20
        epochs = 3
        natural = { alpha = 0.2, refresh_every = 50, fisher = "diagonal", storage = "f32" }
        [optimizer]
        lr = 0.02
        rule = { kind = "sgd" }
        [eval]
        every = 0
        test_at = [1, 2, 3]
        test_k = 100
    "#;
    let parsed = Config::parse(text, &[], Path::new("nrws-vs-rws")).unwrap();
    let arm = |label: &str| settings.arms.iter().find(|a| a.label == label).unwrap();
    assert_eq!(arm("nrws-diagonal").config(2), parsed);
    let rws = arm("rws").config(0);
    assert!(rws.train.natural.is_none() && rws.name == "rws-seed0");
}

/// A rule and a learning rate given for one algorithm reach its config and no other; the
/// natural gradient keeps its Fisher under any rule.
#[test]
fn each_algorithm_takes_its_own_rule_and_rate() {
    let adam = OptimizerConfig::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut algorithms = digits_settings(2);
    algorithms.rules = vec![(Algorithm::Nbihm, adam.clone())];
    algorithms.lrs = vec![(Algorithm::Nbihm, 1e-3), (Algorithm::Rws, 0.05)];
    let settings = Settings::from_algorithms(&algorithms, 1, PathBuf::from("unused")).unwrap();
    for arm in &settings.arms {
        let (rule, lr) = (&arm.config.optimizer.rule, arm.config.optimizer.lr);
        match arm.label.as_str() {
            "nbihm" => {
                assert_eq!((rule, lr), (&adam, 1e-3));
                assert!(arm.config.train.natural.is_some());
                assert_eq!(arm.config.train.algorithm, Variant::Bihm);
            }
            "rws" => assert_eq!((rule, lr), (&OptimizerConfig::Sgd, 0.05)),
            _ => assert_eq!((rule, lr), (&OptimizerConfig::Sgd, 0.02)),
        }
    }
}

/// A fresh directory of this test process.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("helmholtz-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const PROTOCOL: &str = r#"name = "rws-adam"
    [data]
    source = "digits"
    [model]
    hidden = [12]
    [train]
    algorithm = "rws"
    k = 4
    batch_size = 50
    epochs = 9
    [optimizer]
    lr = 0.001
    rule = { kind = "adam" }
    [eval]
    every = 0
    k = 20
"#;

/// Protocol files become arms named by their `name`, with the test NLL after every epoch;
/// two arms of one name are refused.
#[test]
fn protocols_become_arms() {
    let tmp = scratch_dir("protocols");
    let a = write(&tmp, "a.toml", PROTOCOL);
    let b = write(&tmp, "b.toml", &PROTOCOL.replace("rws-adam", "bihm-adam"));
    let settings = Settings::from_protocols(
        &[a.clone(), b],
        &["train.k=5".into()],
        Some(3),
        None,
        2,
        tmp.join("out"),
    )
    .unwrap();
    let labels: Vec<&str> = settings.arms.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["rws-adam", "bihm-adam"]);
    let config = &settings.arms[0].config;
    assert_eq!(config.train.k, 5);
    assert_eq!(config.train.epochs, 3);
    assert_eq!(config.eval.test_at, [1, 2, 3]);
    assert_eq!(config.eval.test_k, Some(20));
    // LABEL:KEY=VALUE overrides one arm, after the overrides of every arm.
    let b = tmp.join("b.toml");
    let one = |set: &[&str]| {
        let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
        Settings::from_protocols(&[a.clone(), b.clone()], &set, None, None, 1, tmp.clone())
    };
    let settings = one(&[
        "train.k=5",
        "bihm-adam:train.k=7",
        "bihm-adam:eval.patience=3",
    ])
    .unwrap();
    let (ks, patience): (Vec<usize>, Vec<Option<usize>>) = settings
        .arms
        .iter()
        .map(|a| (a.config.train.k, a.config.eval.patience))
        .unzip();
    assert_eq!(ks, [5, 7]);
    assert_eq!(patience, [None, Some(3)]);
    let unknown = one(&["nrws:train.k=7"]).unwrap_err().to_string();
    assert!(
        unknown.contains("nrws:train.k=7") && unknown.contains("rws-adam, bihm-adam"),
        "{unknown}"
    );
    let twice = Settings::from_protocols(&[a.clone(), a], &[], None, None, 1, tmp.clone());
    assert!(twice.unwrap_err().to_string().contains("rws-adam"));
}

/// --test-every estimates after every n-th epoch and after the last; 0 is refused.
#[test]
fn test_every_sets_the_estimated_epochs() {
    let tmp = scratch_dir("test-every");
    let a = write(&tmp, "a.toml", PROTOCOL);
    let settings = |epochs| {
        Settings::from_protocols(
            std::slice::from_ref(&a),
            &[],
            Some(epochs),
            None,
            1,
            tmp.clone(),
        )
        .unwrap()
    };
    let at = |s: Settings| s.arms[0].config.eval.test_at.clone();
    assert_eq!(at(settings(12).with_test_every(5).unwrap()), [5, 10, 12]);
    assert_eq!(at(settings(10).with_test_every(5).unwrap()), [5, 10]);
    assert_eq!(at(settings(3).with_test_every(5).unwrap()), [3]);
    assert_eq!(at(settings(3).with_test_every(1).unwrap()), [1, 2, 3]);
    let zero = settings(3).with_test_every(0).unwrap_err().to_string();
    assert!(zero.contains("--test-every"), "{zero}");
}

/// Stops the comparison after a number of steps, like a signal.
struct StopAfter {
    steps: usize,
    stop: Arc<AtomicBool>,
    started: Vec<(String, Option<usize>)>,
}

impl StopAfter {
    /// Raises `stop` after `steps` steps.
    fn new(steps: usize, stop: Arc<AtomicBool>) -> Self {
        StopAfter {
            steps,
            stop,
            started: Vec::new(),
        }
    }

    /// Never stops.
    fn never() -> Self {
        Self::new(usize::MAX, Arc::new(AtomicBool::new(false)))
    }
}

impl Observer<HelmholtzMachine> for StopAfter {
    fn on_step(
        &mut self,
        _: &helmholtz::run::StepRecord,
        _: &helmholtz::run::TrainState,
    ) -> helmholtz::run::Control {
        self.steps = self.steps.saturating_sub(1);
        if self.steps == 0 {
            self.stop.store(true, Ordering::SeqCst);
        }
        helmholtz::run::Control::Continue
    }
}

impl Progress for StopAfter {
    fn starting(&mut self, _: &Path, label: &str, _: u64, _: usize, resumed_at: Option<usize>) {
        self.started.push((label.to_string(), resumed_at));
    }
    fn observer(&mut self) -> &mut dyn Observer<HelmholtzMachine> {
        self
    }
    fn say(&mut self, _: &str) {}
}

/// Runs the comparison to its end without a stop signal.
fn done(settings: &Settings, progress: &mut StopAfter) -> Report {
    match run(settings, progress, &AtomicBool::new(false)).unwrap() {
        Finish::Done(report) => report,
        Finish::Interrupted(dir) => panic!("interrupted in {}", dir.display()),
    }
}

/// The test NLL curves of the first arm, one per seed.
fn nll_curves(report: &Report) -> Vec<Vec<f64>> {
    report.runs[0]
        .curves
        .iter()
        .map(|c| c.iter().map(|p| p.nll).collect())
        .collect()
}

/// An interrupted comparison resumes where it stopped and gives the curves of one that ran
/// through; a finished run is reused, a longer one continues it, and a directory with
/// another config or no run is refused.
#[test]
fn an_interrupted_comparison_resumes_to_the_same_curves() {
    let tmp = scratch_dir("resume");
    let protocol = write(&tmp, "p.toml", PROTOCOL);
    let settings = |epochs: usize, out: &str| {
        Settings::from_protocols(
            std::slice::from_ref(&protocol),
            &[],
            Some(epochs),
            None,
            2,
            tmp.join(out),
        )
        .unwrap()
    };
    let no_stop = AtomicBool::new(false);
    let mut quiet = StopAfter::never();
    let through = done(&settings(2, "through"), &mut quiet);
    // Interrupt in the second epoch of seed 0 (digits: 1437 training points, 29 batches).
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopper = StopAfter::new(40, stop.clone());
    let interrupted = run(&settings(2, "resumed"), &mut stopper, &stop).unwrap();
    assert!(matches!(interrupted, Finish::Interrupted(ref dir) if dir.ends_with("rws-adam-seed0")));
    let mut again = StopAfter::never();
    let resumed = done(&settings(2, "resumed"), &mut again);
    assert_eq!(
        again.started,
        [
            ("rws-adam-seed0".to_string(), Some(1)),
            ("rws-adam-seed1".to_string(), None)
        ]
    );
    assert_eq!(nll_curves(&through), nll_curves(&resumed));
    assert_eq!(nll_curves(&resumed)[0].len(), 2);
    // Finished runs are reused; a longer comparison continues them.
    again.started.clear();
    done(&settings(2, "resumed"), &mut again);
    assert!(again.started.is_empty());
    let longer = done(&settings(3, "resumed"), &mut again);
    assert_eq!(again.started.len(), 2);
    assert_eq!(longer.runs[0].curves[1].len(), 3);
    assert_eq!(nll_curves(&longer)[1][..2], nll_curves(&through)[1][..]);
    // Another config in the same place, or a directory that holds no run, is refused.
    let other = Settings::from_protocols(
        std::slice::from_ref(&protocol),
        &["optimizer.lr=0.01".into()],
        Some(3),
        None,
        1,
        tmp.join("resumed"),
    )
    .unwrap();
    let err = run(&other, &mut again, &no_stop).unwrap_err().to_string();
    assert!(
        err.contains("optimizer.lr") && err.contains("rws-adam-seed0"),
        "{err}"
    );
    std::fs::create_dir_all(tmp.join("foreign/rws-adam-seed0")).unwrap();
    let err = run(&settings(1, "foreign"), &mut again, &no_stop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no run"), "{err}");
}

/// A run that early stopping ended is reused; one resumed past its early stop (a raised
/// patience) and killed before it wrote a new summary continues, although its summary
/// still says it stopped early.
#[test]
fn a_run_resumed_past_its_early_stop_continues() {
    let tmp = scratch_dir("early");
    let protocol = write(&tmp, "p.toml", PROTOCOL);
    // The parameters never change (lr far below f32 resolution), so the validation
    // estimate never improves: patience p stops the run p evaluations after the first.
    let settings = |patience: usize| {
        let overrides = [
            "optimizer.lr=1e-20".to_string(),
            "optimizer.rule={ kind = \"sgd\" }".to_string(),
            "eval.every=1".to_string(),
            format!("eval.patience={patience}"),
        ];
        Settings::from_protocols(
            std::slice::from_ref(&protocol),
            &overrides,
            Some(6),
            None,
            1,
            tmp.join("out"),
        )
        .unwrap()
    };
    let mut quiet = StopAfter::never();
    let stopped = done(&settings(1), &mut quiet);
    assert_eq!(stopped.runs[0].curves[0].len(), 2);
    quiet.started.clear();
    done(&settings(1), &mut quiet);
    assert!(quiet.started.is_empty());
    // Resumed with patience 3, interrupted in its third epoch (29 batches an epoch), and
    // killed: no `finish`. `resume` removes the summary; one written before it did stays
    // and still says EarlyStopped.
    let dir = tmp.join("out/rws-adam-seed0");
    let stale = std::fs::read(dir.join(SUMMARY_FILE)).unwrap();
    let mut resumed = Run::resume(&dir, &["eval.patience=3".to_string()]).unwrap();
    std::fs::write(dir.join(SUMMARY_FILE), stale).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut stopper = StopAfter::new(10, stop.clone());
    assert_eq!(
        resumed.train(&mut stopper, &stop).unwrap(),
        Outcome::Interrupted
    );
    drop(resumed);
    let summary = std::fs::read_to_string(dir.join(SUMMARY_FILE)).unwrap();
    assert!(summary.contains("EarlyStopped"), "{summary}");
    let continued = done(&settings(3), &mut quiet);
    assert_eq!(quiet.started, [("rws-adam-seed0".to_string(), Some(2))]);
    assert_eq!(continued.runs[0].curves[0].len(), 4);
}

/// A seed trained alone (`with_first_seed`) is the run the full comparison would train: a
/// later comparison over seeds 0 and 1 into the same directory trains seed 0 only, reuses
/// seed 1, and gives the curves of a comparison that ran both.
#[test]
fn a_seed_trained_alone_is_reused_by_the_full_comparison() {
    let tmp = scratch_dir("first-seed");
    let protocol = write(&tmp, "p.toml", PROTOCOL);
    let settings = |seeds: u64, out: &str| {
        Settings::from_protocols(
            std::slice::from_ref(&protocol),
            &[],
            Some(1),
            None,
            seeds,
            tmp.join(out),
        )
        .unwrap()
    };
    let mut quiet = StopAfter::never();
    let both = done(&settings(2, "both"), &mut quiet);
    let alone = settings(1, "split").with_first_seed(1).unwrap();
    assert_eq!(alone.seed_range(), 1..2);
    let mut first = StopAfter::never();
    let one = done(&alone, &mut first);
    assert_eq!(first.started, [("rws-adam-seed1".to_string(), None)]);
    assert!(!tmp.join("split/rws-adam-seed0").exists());
    assert_eq!(one.runs[0].curves.len(), 1);
    let mut second = StopAfter::never();
    let split = done(&settings(2, "split"), &mut second);
    assert_eq!(second.started, [("rws-adam-seed0".to_string(), None)]);
    assert_eq!(nll_curves(&split), nll_curves(&both));
    assert_eq!(nll_curves(&one)[0], nll_curves(&both)[1]);
    let err = settings(2, "x")
        .with_first_seed(u64::MAX)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--first-seed"), "{err}");
}
