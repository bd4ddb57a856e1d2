//! Runs made from arrays in memory (the Python package's entry points) are the runs the files
//! of the same values make: `run_mle_with_arrays` against `run_mle` on an NPY file, and
//! `run_vi_with_arrays` against `run_vi` on NPY files, give identical parameters and metrics;
//! the stored data travel with the run (it is moved, then resumed and evaluated); bad arrays are
//! refused naming them before anything is written.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use faer::Mat;
use helmholtz::data::npy::npy_bytes;
use helmholtz::dist::skew::SkewNormal;
use helmholtz::math::rng::Stream;
use helmholtz::run::mle::{
    MleConfig, eval_file, eval_values, resume_mle, run_mle, run_mle_with_arrays,
};
use helmholtz::run::vi::{
    ViConfig, positive_probabilities, predict_run, resume_vi, run_vi, run_vi_with_arrays,
    sample_run,
};
use serde_json::Value;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hh-arrays-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// metrics.jsonl without the seconds.
fn metrics(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("seconds");
            record
        })
        .collect()
}

fn quiet(_: &str) {}

#[test]
fn an_mle_run_of_arrays_is_the_run_of_their_file_and_moves_with_its_data() {
    let root = scratch("mle");
    let truth = SkewNormal::new(
        vec![1.0, -0.5],
        Mat::from_fn(2, 2, |r, c| if r == c { 1.0 } else { 0.3 }),
        vec![2.0, -1.0],
    )
    .unwrap();
    let x = truth.sample(400, &mut Stream::new(7, &[])).unwrap();
    let test = truth.sample(100, &mut Stream::new(8, &[])).unwrap();
    std::fs::write(root.join("x.npy"), npy_bytes(x.as_ref())).unwrap();
    std::fs::write(root.join("test.npy"), npy_bytes(test.as_ref())).unwrap();
    let text = r#"
        name = "arrays"
        seed = 3
        [data]
        train = "x.npy"
        test = "test.npy"
        transform = "standardize"
        [model]
        family = "skew-normal"
        [train]
        iterations = 30
        eval_every = 5
        batch = 50
    "#;
    let config = MleConfig::parse(text, &[], &root.join("c.toml")).unwrap();
    let stop = AtomicBool::new(false);
    let from_file = root.join("from-file");
    let from_arrays = root.join("from-arrays");
    run_mle(&config, &from_file, quiet, &stop).unwrap();
    run_mle_with_arrays(
        config.clone(),
        &from_arrays,
        x.as_ref(),
        Some(test.as_ref()),
        quiet,
        &stop,
    )
    .unwrap();
    let params = |dir: &Path| json(&dir.join("params.json"));
    assert_eq!(params(&from_file), params(&from_arrays));
    assert_eq!(metrics(&from_file), metrics(&from_arrays));
    let stored = std::fs::read_to_string(from_arrays.join("config.toml")).unwrap();
    assert!(stored.contains("train = \"data/train.npy\""), "{stored}");
    assert!(stored.contains("test = \"data/test.npy\""), "{stored}");

    // Moved, the run finds its data: a resume to 60 steps continues exactly as the file's run.
    let moved = root.join("moved");
    std::fs::rename(&from_arrays, &moved).unwrap();
    let more = ["train.iterations=60".to_string()];
    resume_mle(&from_file, &more, quiet, &stop).unwrap();
    resume_mle(&moved, &more, quiet, &stop).unwrap();
    assert_eq!(params(&from_file), params(&moved));
    assert_eq!(metrics(&from_file), metrics(&moved));
    let stored = std::fs::read_to_string(moved.join("config.toml")).unwrap();
    assert!(stored.contains("train = \"data/train.npy\""), "{stored}");
    let on_file = eval_file(&from_file, &root.join("test.npy")).unwrap();
    let in_memory = eval_values(&moved, test.as_ref(), Path::new("data")).unwrap();
    assert_eq!(
        (on_file.rows, on_file.mean),
        (in_memory.rows, in_memory.mean)
    );
    let summary = json(&moved.join("summary.json"));
    assert_eq!(summary["test_nll"].as_f64().unwrap(), in_memory.mean);

    // Bad arrays are refused naming them, and nothing is written.
    let mut bad = x.clone();
    bad[(3, 1)] = f64::NAN;
    let refused = root.join("refused");
    let err = run_mle_with_arrays(config.clone(), &refused, bad.as_ref(), None, quiet, &stop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data: row 4, column x2 is NaN"), "{err}");
    assert!(!refused.exists());
    let counts = MleConfig::parse(
        "name = \"c\"\n[data]\ntrain = \"x.csv\"\n[model]\nfamily = \"negative-binomial\"\n",
        &[],
        &root.join("c.toml"),
    )
    .unwrap();
    let negative = Mat::from_fn(5, 1, |i, _| if i == 2 { -1.0 } else { i as f64 });
    let err = run_mle_with_arrays(counts, &refused, negative.as_ref(), None, quiet, &stop)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data: row 3, column x1: -1 is not a count"),
        "{err}"
    );
    assert!(!refused.exists());
    let err = eval_values(&moved, Mat::<f64>::zeros(3, 3).as_ref(), Path::new("data"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("data: 3 columns"), "{err}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn a_vi_run_of_arrays_is_the_run_of_their_files() {
    let root = scratch("vi");
    let mut rng = Stream::new(11, &[]);
    let n = 120;
    let x = Mat::from_fn(n, 2, |_, _| rng.normal());
    let w = [1.5, -1.0];
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let t = w[0] * x[(i, 0)] + w[1] * x[(i, 1)] + 0.3;
            if rng.uniform_f64() < 1.0 / (1.0 + (-t).exp()) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let x_test = Mat::from_fn(40, 2, |_, _| rng.normal());
    let y_test: Vec<f64> = (0..40).map(|i| f64::from(x_test[(i, 0)] > 0.0)).collect();
    let column = |y: &[f64]| Mat::from_fn(y.len(), 1, |i, _| y[i]);
    for (name, values) in [
        ("x.npy", x.clone()),
        ("y.npy", column(&y)),
        ("xt.npy", x_test.clone()),
        ("yt.npy", column(&y_test)),
    ] {
        std::fs::write(root.join(name), npy_bytes(values.as_ref())).unwrap();
    }
    let text = r#"
        name = "vi"
        seed = 2
        [data]
        train = "x.npy"
        labels = "y.npy"
        test = "xt.npy"
        test_labels = "yt.npy"
        transform = "standardize"
        [model]
        prior_scale = 2.0
        family = "skew-normal"
        [train]
        iterations = 60
        eval_every = 20
        final_draws = 500
    "#;
    let config = ViConfig::parse(text, &[], &root.join("c.toml")).unwrap();
    let stop = AtomicBool::new(false);
    let (from_file, from_arrays) = (root.join("from-file"), root.join("from-arrays"));
    run_vi(&config, &from_file, quiet, &stop).unwrap();
    run_vi_with_arrays(
        config.clone(),
        &from_arrays,
        x.as_ref(),
        &y,
        Some((x_test.as_ref(), &y_test)),
        quiet,
        &stop,
    )
    .unwrap();
    for file in ["posterior.json", "summary.json"] {
        let (mut a, mut b) = (json(&from_file.join(file)), json(&from_arrays.join(file)));
        for v in [&mut a, &mut b] {
            v.as_object_mut().unwrap().remove("train_s");
        }
        assert_eq!(a, b, "{file}");
    }
    assert_eq!(metrics(&from_file), metrics(&from_arrays));
    let moved = root.join("moved");
    std::fs::rename(&from_arrays, &moved).unwrap();
    let more = ["train.iterations=80".to_string()];
    resume_vi(&from_file, &more, quiet, &stop).unwrap();
    resume_vi(&moved, &more, quiet, &stop).unwrap();
    assert_eq!(metrics(&from_file), metrics(&moved));
    let stored = std::fs::read_to_string(moved.join("config.toml")).unwrap();
    assert!(
        stored.contains("labels = \"data/train-labels.npy\""),
        "{stored}"
    );

    // The predictive of new rows: the run's transform and intercept applied to the draws.
    let p = predict_run(&moved, x_test.as_ref(), 300, 5).unwrap();
    let (draws, features) = sample_run(&moved, 300, 5).unwrap();
    assert_eq!(features, ["x1", "x2", "intercept"]);
    let posterior = json(&moved.join("posterior.json"));
    let shift: Vec<f64> = serde_json::from_value(posterior["transform"]["shift"].clone()).unwrap();
    let scale: Vec<f64> = serde_json::from_value(posterior["transform"]["scale"].clone()).unwrap();
    let design = Mat::from_fn(40, 3, |i, j| {
        if j < 2 {
            (x_test[(i, j)] - shift[j]) / scale[j]
        } else {
            1.0
        }
    });
    assert_eq!(p, positive_probabilities(draws.as_ref(), design.as_ref()));
    let err = predict_run(&moved, Mat::<f64>::zeros(2, 3).as_ref(), 10, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("X has 3 columns"), "{err}");

    let refused = root.join("refused");
    let mut bad = y.clone();
    bad[4] = 2.0;
    let err = run_vi_with_arrays(
        config.clone(),
        &refused,
        x.as_ref(),
        &bad,
        None,
        quiet,
        &stop,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("y: row 5 (data row 5): label 2"), "{err}");
    let err = run_vi_with_arrays(config, &refused, x.as_ref(), &y[1..], None, quiet, &stop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("119 labels for the 120 rows of X"), "{err}");
    assert!(!refused.exists());
    std::fs::remove_dir_all(&root).ok();
}
