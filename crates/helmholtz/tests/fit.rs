//! `helmholtz fit` runs end to end on the embedded digits: every shipped entropy-sum config
//! (shortened), the stored model reloaded to the same decomposition, the notice where the identity
//! does not apply, and clear errors for bad configs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use helmholtz::run::fit::{FitConfig, open_fit, resume_fit, run_fit, run_fit_until};

/// A fresh directory per call (the tests run in parallel and fit the same configs).
fn temp_dir(name: &str) -> PathBuf {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!(
        "helmholtz-fit-{name}-{}-{call}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(name: &str, overrides: &[&str]) -> FitConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(format!("{name}.toml"));
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    FitConfig::load(&path, &overrides).unwrap()
}

/// Fits, reopens the run and recomputes the decomposition from the stored model and data.
fn fit_and_reopen(name: &str, overrides: &[&str]) -> (serde_json::Value, f64) {
    let dir = temp_dir(name);
    let (_, summary) = run_fit(&config(name, overrides), &dir, |_| {}).unwrap();
    let (config, model, x) = open_fit(&dir).unwrap();
    let again = model.decompose(x.as_ref(), &config).unwrap();
    assert_eq!(
        again.sum, summary.decomposition.sum,
        "{name}: reloaded model differs"
    );
    let last = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (last, summary.decomposition.sum.relative_gap())
}

#[test]
fn classic_models_reach_the_identity_and_round_trip() {
    let (_, gap) = fit_and_reopen("entropy-ppca", &[]);
    assert!(gap < 1e-10, "PPCA closed form: {gap}");
    let (record, _) = fit_and_reopen("entropy-ppca", &["train.method=default"]);
    assert!(record.get("gap").is_some(), "{record}");
    for (name, tol) in [
        ("entropy-gmm-diagonal", 1e-8),
        ("entropy-gmm-full", 1e-8),
        ("entropy-factor-analysis", 1e-5),
    ] {
        let (_, gap) = fit_and_reopen(name, &[]);
        assert!(gap < tol, "{name}: relative gap {gap}");
    }
    // Binary models on the binarised digits, shortened.
    let (_, gap) = fit_and_reopen(
        "entropy-sbn-exact",
        &["model.latents=3", "data.points=300", "train.max_steps=300"],
    );
    assert!(gap < 1e-4, "SBN: {gap}");
    let (_, gap) = fit_and_reopen(
        "entropy-bernoulli-mixture",
        &["data.source=digits", "data.points=500"],
    );
    assert!(gap < 1e-8, "Bernoulli mixture: {gap}");
}

#[test]
fn vaes_run_and_log_the_decomposition() {
    for v in 1..=3 {
        let name = format!("entropy-vae{v}-mnist");
        let (record, _) = fit_and_reopen(
            &name,
            &[
                "data.source=digits",
                "data.points=200",
                "train.epochs=2",
                "train.eval_every=1",
                "model.hidden=[16]",
                "model.latents=3",
            ],
        );
        for key in [
            "elbo",
            "entropy_sum",
            "gap",
            "collapsed",
            "posterior_entropy",
        ] {
            assert!(
                record.get(key).is_some(),
                "{name}: {key} missing in {record}"
            );
        }
    }
}

#[test]
fn a_fixed_noise_variance_gets_a_notice_instead_of_a_gap() {
    let (record, _) = fit_and_reopen(
        "entropy-ppca",
        &["train.method=default", "model.fixed_noise=0.05"],
    );
    assert!(record.get("gap").is_none() && record.get("entropy_sum").is_none());
    let notice = record["notice"].as_str().unwrap();
    assert!(notice.contains("observation variance is fixed"), "{notice}");
}

#[test]
fn bad_configs_are_refused_with_a_message() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/entropy-ppca.toml");
    for (overrides, expected) in [
        (vec!["model.colour=1"], "colour"),
        (vec!["model.kind=bernoulli-mixture"], "data.binarize"),
        (
            vec![
                "model.kind=vae-3",
                "train.optimal_variances=true",
                "train.method=default",
            ],
            "VAE-3",
        ),
        (vec!["model.kind=gmm-full"], "closed-form"),
        (vec!["data.points=0"], "points"),
        (
            vec![
                "model.kind=sbn-exact",
                "data.binarize=true",
                "data.dequantize=2",
                "train.method=default",
            ],
            "exclude",
        ),
    ] {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let err = FitConfig::load(&path, &overrides).unwrap_err().to_string();
        assert!(err.contains(expected), "{overrides:?}: {err}");
    }
    let err = run_fit(
        &config("entropy-ppca", &["data.points=100000"]),
        &temp_dir("too-many"),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("data.points"), "{err}");
}

/// Fits uninterrupted, and again stopped after its first batch and resumed; the models, the
/// summaries' decompositions and the metrics must be identical.
fn interrupted_fit_resumes_bit_for_bit(name: &str, overrides: &[&str], model_file: &str) {
    let config = config(name, overrides);
    let whole = temp_dir(&format!("{name}-whole"));
    let (_, summary) = run_fit(&config, &whole, |_| {}).unwrap();
    let parts = temp_dir(&format!("{name}-parts"));
    let stop_at_once = AtomicBool::new(true);
    let (_, partial) = run_fit_until(&config, &parts, |_| {}, &stop_at_once).unwrap();
    assert!(
        partial.stopped.starts_with("interrupted"),
        "{}",
        partial.stopped
    );
    let (_, resumed) = resume_fit(&parts, &[], |_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(
        resumed.decomposition.sum, summary.decomposition.sum,
        "{name}"
    );
    assert_eq!(resumed.steps, summary.steps, "{name}");
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    assert_eq!(read(&parts, model_file), read(&whole, model_file), "{name}");
    let metrics = |dir: &Path| -> Vec<serde_json::Value> {
        helmholtz::run::read_metrics(&dir.join("metrics.jsonl"))
            .unwrap()
            .into_iter()
            .collect()
    };
    assert_eq!(metrics(&parts), metrics(&whole), "{name}: metrics");
    for dir in [whole, parts] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn em_and_vae_fits_resume_bit_for_bit_after_an_interruption() {
    interrupted_fit_resumes_bit_for_bit(
        "entropy-gmm-diagonal",
        &["train.max_steps=30"],
        "model.json",
    );
    // Stopped after the first of 4 batches: mid-epoch.
    interrupted_fit_resumes_bit_for_bit(
        "entropy-vae1-mnist",
        &[
            "data.source=digits",
            "data.points=200",
            "train.epochs=3",
            "train.batch_size=50",
            "train.eval_every=1",
            "model.hidden=[16]",
            "model.latents=3",
        ],
        "model.safetensors",
    );
}

/// `data.transform`: stored in the run, applied to the training points (standardized columns),
/// and, since factor analysis is equivariant under per-column scaling, its maximum likelihood in
/// the data's own units is the transformed one minus Σ ln scale per point. Binary models and
/// constant columns are refused with a message.
#[test]
fn transforms_are_stored_applied_and_change_factor_analysis_only_by_the_jacobian() {
    let plain = "entropy-factor-analysis";
    let dir = temp_dir("fa-plain");
    let (_, original) = run_fit(&config(plain, &["model.latents=3"]), &dir, |_| {}).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let dir = temp_dir("fa-standardized");
    let (_, scaled) = run_fit(
        &config(plain, &["model.latents=3", "data.transform=standardize"]),
        &dir,
        |_| {},
    )
    .unwrap();
    let stored: helmholtz::data::table::Transform =
        serde_json::from_str(&std::fs::read_to_string(dir.join("transform.json")).unwrap())
            .unwrap();
    let (_, _, x) = open_fit(&dir).unwrap();
    for r in 0..x.nrows() {
        let mean = (0..x.ncols()).map(|c| x[(r, c)]).sum::<f64>() / x.ncols() as f64;
        let var = (0..x.ncols()).map(|c| x[(r, c)].powi(2)).sum::<f64>() / x.ncols() as f64;
        assert!(
            mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9,
            "{r}: {mean} {var}"
        );
    }
    let (a, b) = (
        original.decomposition.sum.elbo,
        scaled.decomposition.sum.elbo - stored.log_scale(),
    );
    assert!((a - b).abs() < 1e-4 * a.abs(), "{a} vs {b}");
    let _ = std::fs::remove_dir_all(&dir);

    let err = FitConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/entropy-bernoulli-mixture.toml"),
        &["data.transform=min-max".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("binary data"), "{err}");
    // The digits without dequantisation have pixels that are 0 in every image.
    let dir = temp_dir("constant");
    let mut raw = config(plain, &["data.transform=standardize"]);
    raw.data.dequantize = None;
    let err = run_fit(&raw, &dir, |_| {}).unwrap_err().to_string();
    assert!(err.contains("column 1 (1-based) is constant"), "{err}");
    assert!(!dir.exists(), "a refused fit leaves no run directory");
}

/// `evaluate_file`: a Gaussian mixture fitted to the shipped Engel CSV under standardize gives,
/// on its own training file, exactly the log-likelihood of the fit in the data's own units
/// (the stored transform, not a refitted one); a file of another width is refused.
#[test]
fn a_fit_run_evaluates_new_files_through_its_stored_transform() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/own-data");
    let dir = temp_dir("engel");
    let text = "name = \"engel\"\n[data]\nsource = \"csv\"\ntrain = \"engel.csv\"\ntransform = \"standardize\"\n[model]\nkind = \"gmm-full\"\nlatents = 2\n[train]\nmax_steps = 2000\ntol = 1e-12\n";
    let config = FitConfig::parse(text, &[], &root.join("engel-gmm.toml")).unwrap();
    let (_, summary) = run_fit(&config, &dir, |_| {}).unwrap();
    let on_train = helmholtz::run::fit::evaluate_file(&dir, &root.join("engel.csv")).unwrap();
    assert_eq!(on_train.points, 235);
    let fitted = summary.decomposition.log_likelihood.unwrap();
    assert_eq!(on_train.log_likelihood, Some(fitted - on_train.log_scale));
    assert!(on_train.log_scale > 0.0);
    // Half the points, written elsewhere: the same transform applies, the mean changes.
    let lines: Vec<&str> = std::fs::read_to_string(root.join("engel.csv"))
        .unwrap()
        .lines()
        .take(101)
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(String::as_str)
        .collect();
    let half = dir.join("half.csv");
    std::fs::write(&half, lines.join("\n")).unwrap();
    let on_half = helmholtz::run::fit::evaluate_file(&dir, &half).unwrap();
    assert_eq!(
        (on_half.points, on_half.log_scale),
        (100, on_train.log_scale)
    );
    let wide = dir.join("wide.csv");
    std::fs::write(&wide, "a,b,c\n1,2,3\n4,5,6\n").unwrap();
    let err = helmholtz::run::fit::evaluate_file(&dir, &wide)
        .unwrap_err()
        .to_string();
    assert!(err.contains("wide.csv has 3 columns"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `run_fit_with_array`: the points are stored in the run under a relative path, the run is the
/// fit of the same points from an NPY file (model and metrics identical), it still opens and
/// scores after its directory moves, `FitRunModel` gives per-point log-likelihoods averaging to
/// `evaluate_file`'s, and a refused array leaves the directory as it was.
#[test]
fn a_fit_on_an_array_is_the_fit_of_its_file_and_moves_with_its_data() {
    use helmholtz::math::rng::Stream;
    use helmholtz::run::fit::{FitRunModel, evaluate_file, run_fit_with_array};
    let mut rng = Stream::new(4, &[]);
    // 300 points around three centres in 3 dimensions (one point per column).
    let x = faer::Mat::from_fn(3, 300, |r, c| {
        3.0 * ((c % 3) as f64 - 1.0) * (r as f64 - 1.0) + 0.7 * rng.normal()
    });
    let text = "name = \"array\"\nseed = 2\n[data]\nsource = \"npy\"\ntrain = \"x.npy\"\n[model]\nkind = \"gmm-full\"\nlatents = 3\n[train]\nmax_steps = 200\ntol = 1e-12\n";
    let folder = temp_dir("array-file");
    std::fs::create_dir_all(&folder).unwrap();
    helmholtz::data::npy::write_npy(&folder.join("x.npy"), x.transpose(), false).unwrap();
    let config = FitConfig::parse(text, &[], &folder.join("array.toml")).unwrap();
    let from_file = folder.join("from-file");
    let (_, file_summary) = run_fit(&config, &from_file, |_| {}).unwrap();
    let from_array = folder.join("from-array");
    let stop = AtomicBool::new(false);
    let (_, array_summary) =
        run_fit_with_array(&config, &from_array, x.as_ref(), |_| {}, &stop).unwrap();
    assert_eq!(
        array_summary.decomposition, file_summary.decomposition,
        "the same fit"
    );
    let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_eq!(
        read(&from_array, "model.json"),
        read(&from_file, "model.json")
    );
    assert_eq!(
        read(&from_array, "metrics.jsonl"),
        read(&from_file, "metrics.jsonl")
    );
    let stored = String::from_utf8(read(&from_array, "config.toml")).unwrap();
    assert!(stored.contains("train = \"data/train.npy\""), "{stored}");

    let moved = folder.join("moved");
    std::fs::rename(&from_array, &moved).unwrap();
    let (_, model, points) = open_fit(&moved).unwrap();
    assert_eq!(points, x, "the stored points, read back exactly");
    let fit = FitRunModel::open(&moved).unwrap();
    assert_eq!(fit.model, model);
    let on_file = evaluate_file(&moved, &folder.join("x.npy")).unwrap();
    let prepared = fit.prepare(x.clone(), "x").unwrap();
    let (evaluation, _) = fit.evaluate(prepared.as_ref()).unwrap();
    assert_eq!(evaluation, on_file);
    let scores = fit.scores(prepared.as_ref()).unwrap();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let ll = on_file.log_likelihood.unwrap();
    assert!((mean - ll).abs() < 1e-12 * ll.abs(), "{mean} vs {ll}");
    // A resume that rewrites the config keeps the stored points relative: the run still moves.
    resume_fit(&moved, &["train.max_steps=250".into()], |_| {}, &stop).unwrap();
    let rewritten = String::from_utf8(read(&moved, "config.toml")).unwrap();
    assert!(
        rewritten.contains("train = \"data/train.npy\""),
        "{rewritten}"
    );
    assert!(rewritten.contains("max_steps = 250"), "{rewritten}");
    let again = folder.join("again");
    std::fs::rename(&moved, &again).unwrap();
    let fit = FitRunModel::open(&again).unwrap();
    open_fit(&again).unwrap();
    // Draws in the data's units, with the data's spread.
    let (draws, components) = fit.sample(5000, 1).unwrap();
    assert_eq!(components.map(|c| c.len()), Some(5000));
    assert_eq!((draws.nrows(), draws.ncols()), (3, 5000));

    // A refused fit (a constant column for factor analysis) leaves no trace.
    let mut fa = config.clone();
    fa.model.kind = helmholtz::run::fit::ModelKind::FactorAnalysis;
    fa.model.latents = 1;
    let constant = faer::Mat::from_fn(3, 50, |r, c| {
        if r == 1 {
            2.0
        } else {
            (c * (r + 1)) as f64 % 7.0
        }
    });
    let refused = folder.join("refused");
    let err = run_fit_with_array(&fa, &refused, constant.as_ref(), |_| {}, &stop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("data column 2 is constant"), "{err}");
    assert!(!refused.exists());
    std::fs::create_dir(&refused).unwrap();
    run_fit_with_array(&fa, &refused, constant.as_ref(), |_| {}, &stop).unwrap_err();
    assert_eq!(
        std::fs::read_dir(&refused).unwrap().count(),
        0,
        "emptied again"
    );
    let mut nan = x.clone();
    nan[(2, 7)] = f64::NAN;
    let err = run_fit_with_array(&config, &folder.join("nan"), nan.as_ref(), |_| {}, &stop)
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature 2 of point 7"), "{err}");
    let _ = std::fs::remove_dir_all(&folder);
}
