//! `helmholtz vi` end to end, through the binary, on a CSV drawn in the test from a known 2-D
//! logistic model (w = (1.5, −1), features N(0, 1), no intercept, prior N(0, 2² I)): for every
//! family, the final negative ELBO lies within 0.1 nats above −ln p(y | X) (the evidence by
//! quadrature, computed here) and the generating weights within two posterior standard
//! deviations of the posterior mean; a test split, a labels file, resume, posterior draws and
//! bad inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{scratch, text};
use helmholtz::math::rng::Stream;
use serde_json::Value;

/// The generating weights.
const TRUTH: [f64; 2] = [1.5, -1.0];
/// The prior's standard deviation.
const PRIOR_SCALE: f64 = 2.0;
/// Training points.
const N: usize = 150;

/// `n` points x ~ N(0, I) with labels 0/1 ~ Bernoulli(σ(xᵀw)).
fn draw(n: usize, seed: u64) -> Vec<([f64; 2], f64)> {
    let mut rng = Stream::new(seed, &[]);
    (0..n)
        .map(|_| {
            let x = [rng.normal(), rng.normal()];
            let t = TRUTH[0] * x[0] + TRUTH[1] * x[1];
            let y = if rng.uniform_f64() < 1.0 / (1.0 + (-t).exp()) {
                1.0
            } else {
                0.0
            };
            (x, y)
        })
        .collect()
}

/// Writes the points as CSV with the header `x1,x2,y`.
fn write_csv(path: &Path, points: &[([f64; 2], f64)]) {
    let mut text = String::from("x1,x2,y\n");
    for ([a, b], y) in points {
        text.push_str(&format!("{a},{b},{y}\n"));
    }
    std::fs::write(path, text).unwrap();
}

/// ln p(y | X, w) + ln N(w; 0, s² I), written here independently of the library.
fn log_joint(points: &[([f64; 2], f64)], w: [f64; 2]) -> f64 {
    let ll: f64 = points
        .iter()
        .map(|([a, b], y)| {
            let t = (2.0 * y - 1.0) * (w[0] * a + w[1] * b);
            // ln σ(t), stable on both sides.
            -((-t.abs()).exp().ln_1p() + (-t).max(0.0))
        })
        .sum();
    let s2 = PRIOR_SCALE * PRIOR_SCALE;
    ll - 0.5 * (w[0] * w[0] + w[1] * w[1]) / s2 - (2.0 * std::f64::consts::PI * s2).ln()
}

/// The posterior mode by Newton's method, and the Laplace standard deviations there.
fn mode(points: &[([f64; 2], f64)]) -> ([f64; 2], [f64; 2]) {
    let mut w = [0.0, 0.0];
    let mut h = [[0.0; 2]; 2];
    for _ in 0..50 {
        let mut g = [-w[0] / PRIOR_SCALE.powi(2), -w[1] / PRIOR_SCALE.powi(2)];
        h = [
            [1.0 / PRIOR_SCALE.powi(2), 0.0],
            [0.0, 1.0 / PRIOR_SCALE.powi(2)],
        ];
        for ([a, b], y) in points {
            let x = [*a, *b];
            let p = 1.0 / (1.0 + (-(w[0] * a + w[1] * b)).exp());
            for r in 0..2 {
                g[r] += (y - p) * x[r];
                for c in 0..2 {
                    h[r][c] += p * (1.0 - p) * x[r] * x[c];
                }
            }
        }
        let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
        w[0] += (h[1][1] * g[0] - h[0][1] * g[1]) / det;
        w[1] += (h[0][0] * g[1] - h[1][0] * g[0]) / det;
    }
    let det = h[0][0] * h[1][1] - h[0][1] * h[1][0];
    (w, [(h[1][1] / det).sqrt(), (h[0][0] / det).sqrt()])
}

/// −ln p(y | X) by the midpoint rule on a square of half-width `width` Laplace standard
/// deviations around the mode, `cells` cells a side; and the exact posterior mean.
fn quadrature(points: &[([f64; 2], f64)], width: f64, cells: usize) -> (f64, [f64; 2]) {
    let (centre, sd) = mode(points);
    let step = [
        2.0 * width * sd[0] / cells as f64,
        2.0 * width * sd[1] / cells as f64,
    ];
    let reference = log_joint(points, centre);
    let (mut mass, mut first) = (0.0, [0.0; 2]);
    for i in 0..cells {
        for j in 0..cells {
            let w = [
                centre[0] - width * sd[0] + step[0] * (i as f64 + 0.5),
                centre[1] - width * sd[1] + step[1] * (j as f64 + 0.5),
            ];
            let p = (log_joint(points, w) - reference).exp();
            mass += p;
            first[0] += p * w[0];
            first[1] += p * w[1];
        }
    }
    let evidence = reference + (mass * step[0] * step[1]).ln();
    (-evidence, [first[0] / mass, first[1] / mass])
}

/// −ln p(y | X) and the posterior mean, with the quadrature's own accuracy check: a finer grid
/// and a wider square agree to 1e-6 nats.
fn negative_log_evidence(points: &[([f64; 2], f64)]) -> (f64, [f64; 2]) {
    let (coarse, _) = quadrature(points, 10.0, 200);
    let (wide, _) = quadrature(points, 14.0, 280);
    let (fine, mean) = quadrature(points, 10.0, 400);
    assert!(
        (coarse - fine).abs() < 1e-6 && (wide - fine).abs() < 1e-6,
        "quadrature not converged: {coarse}, {wide}, {fine}"
    );
    (fine, mean)
}

fn helmholtz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(args)
        .output()
        .unwrap()
}

/// Writes a config `NAME.toml` in `dir` with the `[data]` keys `data` and extra sections.
fn config(dir: &Path, name: &str, data: &str, rest: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nseed = 0\n[data]\n{data}\nintercept = false\n[model]\nprior_scale = {PRIOR_SCALE}\n{rest}"
        ),
    )
    .unwrap();
    path
}

/// Runs `helmholtz vi CONFIG --out DIR --quiet [extra]` and returns the run directory.
fn vi(config: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "vi",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend(extra);
    let output = helmholtz(&args);
    assert!(output.status.success(), "{}", text(&output));
    out.to_path_buf()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap()
}

/// The must-show: for every family with SNGD, −ELBO (20 000 draws, standard error ≤ 0.01) is
/// within 0.1 nats of −ln p(y | X) and not below it by more than three standard errors; the
/// generating weights lie within two posterior standard deviations of the posterior mean, and
/// the posterior mean is within a quarter of a standard deviation of the exact one.
#[test]
fn every_family_closes_the_gap_to_the_log_evidence() {
    let dir = scratch("vi", "evidence");
    let points = draw(N, 1);
    write_csv(&dir.join("train.csv"), &points);
    let (bound, exact_mean) = negative_log_evidence(&points);
    for family in ["gaussian", "skew-normal", "skew-t", "skew-normal-mixture"] {
        let path = config(
            &dir,
            family,
            "train = \"train.csv\"\nlabel = \"y\"",
            &format!("family = \"{family}\"\n[train]\niterations = 2000\nfinal_draws = 20000\n"),
        );
        let run = vi(&path, &dir.join(family), &[]);
        let summary = json(&run.join("summary.json"));
        let (value, se) = (
            number(&summary["negative_elbo"]),
            number(&summary["negative_elbo_se"]),
        );
        eprintln!("{family}: −ELBO {value:.4} ± {se:.4}, −ln p(y | X) {bound:.4}");
        assert!(se <= 0.01, "{family}: standard error {se}");
        assert!(
            value >= bound - 3.0 * se,
            "{family}: −ELBO {value} below −ln p(y | X) {bound}"
        );
        assert!(
            value <= bound + 0.1,
            "{family}: −ELBO {value}, −ln p(y | X) {bound}"
        );
        let posterior = json(&run.join("posterior.json"));
        assert_eq!(posterior["parameters"]["family"], family);
        for (j, marginal) in posterior["marginals"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let (mean, sd) = (number(&marginal["mean"]), number(&marginal["sd"]));
            eprintln!(
                "  {}: mean {mean:.4} sd {sd:.4} (exact mean {:.4}, truth {})",
                marginal["feature"], exact_mean[j], TRUTH[j]
            );
            assert!(
                (mean - TRUTH[j]).abs() <= 2.0 * sd,
                "{family}: weight {j} mean {mean} sd {sd}, truth {}",
                TRUTH[j]
            );
            assert!(
                (mean - exact_mean[j]).abs() <= 0.25 * sd,
                "{family}: weight {j} mean {mean}, exact {}",
                exact_mean[j]
            );
            let quantiles: Vec<f64> = marginal["quantiles"]
                .as_array()
                .unwrap()
                .iter()
                .map(number)
                .collect();
            assert!(quantiles.windows(2).all(|q| q[0] < q[1]), "{quantiles:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With a test split the summary holds the held-out log predictive density per point and the
/// accuracy, better than a coin on these data; the printed summary says so too.
#[test]
fn a_test_split_gives_held_out_accuracy_and_log_predictive_density() {
    let dir = scratch("vi", "test-split");
    write_csv(&dir.join("train.csv"), &draw(N, 1));
    write_csv(&dir.join("test.csv"), &draw(400, 2));
    let path = config(
        &dir,
        "split",
        "train = \"train.csv\"\ntest = \"test.csv\"\nlabel = \"y\"",
        "family = \"gaussian\"\n[train]\niterations = 300\nfinal_draws = 5000\n",
    );
    let out = dir.join("run");
    let output = helmholtz(&["vi", path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("held out (400 points)"), "{printed}");
    let test = &json(&out.join("summary.json"))["test"];
    assert_eq!(test["points"], 400);
    let (accuracy, lpd) = (
        number(&test["accuracy"]),
        number(&test["log_predictive_per_point"]),
    );
    assert!(accuracy > 0.65 && accuracy <= 1.0, "{accuracy}");
    assert!(lpd < 0.0 && lpd > -std::f64::consts::LN_2, "{lpd}");
    for plot in ["elbo_steps.png", "elbo_seconds.png"] {
        assert!(out.join(plot).exists(), "{plot}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The label column by name, by index, and the labels as ±1 in a separate file (features alone
/// in another) give the same posterior.
#[test]
fn a_label_column_and_a_labels_file_give_the_same_posterior() {
    let dir = scratch("vi", "labels");
    let points = draw(N, 1);
    write_csv(&dir.join("train.csv"), &points);
    let features: String = std::iter::once("x1,x2\n".to_string())
        .chain(points.iter().map(|([a, b], _)| format!("{a},{b}\n")))
        .collect();
    std::fs::write(dir.join("x.csv"), features).unwrap();
    let labels: String = points
        .iter()
        .map(|(_, y)| format!("{}\n", 2.0 * y - 1.0))
        .collect();
    std::fs::write(dir.join("y.csv"), labels).unwrap();
    let rest = "family = \"skew-normal\"\n[train]\niterations = 200\nfinal_draws = 2000\n";
    let posterior = |name: &str, data: &str| {
        let run = vi(&config(&dir, name, data, rest), &dir.join(name), &[]);
        let value = json(&run.join("posterior.json"));
        (value["parameters"].clone(), value["marginals"].clone())
    };
    let by_name = posterior("name", "train = \"train.csv\"\nlabel = \"y\"");
    assert_eq!(
        posterior("index", "train = \"train.csv\"\nlabel = 2"),
        by_name
    );
    assert_eq!(
        posterior("file", "train = \"x.csv\"\nlabels = \"y.csv\""),
        by_name
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run stopped early (fewer iterations) and resumed with more ends exactly where an
/// uninterrupted run ends: the same posterior.json byte for byte, the same metrics.
#[test]
fn a_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_ends() {
    let dir = scratch("vi", "resume");
    write_csv(&dir.join("train.csv"), &draw(N, 1));
    let path = config(
        &dir,
        "resume",
        "train = \"train.csv\"\nlabel = \"y\"",
        "family = \"skew-t\"\n[train]\niterations = 400\neval_every = 50\nfinal_draws = 2000\n",
    );
    let whole = vi(&path, &dir.join("whole"), &[]);
    let part = vi(&path, &dir.join("part"), &["--set", "train.iterations=150"]);
    let output = helmholtz(&[
        "vi",
        "--resume",
        part.to_str().unwrap(),
        "--set",
        "train.iterations=400",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let read = |run: &Path, file: &str| std::fs::read_to_string(run.join(file)).unwrap();
    assert_eq!(
        read(&part, "posterior.json"),
        read(&whole, "posterior.json")
    );
    let without_time = |run: &Path| {
        let mut summary = json(&run.join("summary.json"));
        summary["train_s"] = Value::Null;
        summary
    };
    assert_eq!(without_time(&part), without_time(&whole));
    let elbo = |run: &Path| -> Vec<(u64, f64)> {
        read(run, "metrics.jsonl")
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                (v["step"].as_u64().unwrap(), number(&v["negative_elbo"]))
            })
            .collect()
    };
    assert_eq!(elbo(&part), elbo(&whole));
    assert!(read(&part, "history.jsonl").contains("train.iterations: 150 -> 400"));
    // What a resume may not change is refused, naming the key.
    let output = helmholtz(&[
        "vi",
        "--resume",
        part.to_str().unwrap(),
        "--set",
        "train.lr=0.5",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("train.lr cannot change"),
        "{}",
        text(&output)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `sample RUN --n N -o draws.csv`: one column per feature, N rows whose means match the
/// posterior mean; an existing file is refused unless --force, a PNG name is refused.
#[test]
fn sample_writes_posterior_draws_as_csv() {
    let dir = scratch("vi", "sample");
    write_csv(&dir.join("train.csv"), &draw(N, 1));
    let path = config(
        &dir,
        "sample",
        "train = \"train.csv\"\nlabel = \"y\"",
        "family = \"skew-normal-mixture\"\ncomponents = 2\n[train]\niterations = 300\nfinal_draws = 2000\n",
    );
    let run = vi(&path, &dir.join("run"), &[]);
    let draws = dir.join("draws.csv");
    let sample = |extra: &[&str]| {
        let mut args = vec!["sample", run.to_str().unwrap(), "--n", "20000", "-o"];
        args.push(draws.to_str().unwrap());
        args.extend(extra);
        helmholtz(&args)
    };
    let output = sample(&[]);
    assert!(output.status.success(), "{}", text(&output));
    let content = std::fs::read_to_string(&draws).unwrap();
    let mut lines = content.lines();
    assert_eq!(lines.next(), Some("x1,x2"));
    let rows: Vec<[f64; 2]> = lines
        .map(|l| {
            let mut it = l.split(',').map(|v| v.parse::<f64>().unwrap());
            [it.next().unwrap(), it.next().unwrap()]
        })
        .collect();
    assert_eq!(rows.len(), 20000);
    let posterior = json(&run.join("posterior.json"));
    for j in 0..2 {
        let marginal = &posterior["marginals"][j];
        let mean = rows.iter().map(|r| r[j]).sum::<f64>() / rows.len() as f64;
        let se = number(&marginal["sd"]) / (rows.len() as f64).sqrt();
        assert!(
            (mean - number(&marginal["mean"])).abs() < 5.0 * se,
            "{j}: {mean}"
        );
    }
    let output = sample(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("--force"), "{}", text(&output));
    assert!(sample(&["--force"]).status.success());
    let output = helmholtz(&[
        "sample",
        run.to_str().unwrap(),
        "-o",
        dir.join("draws.png").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("CSV"), "{}", text(&output));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad inputs exit 1 with one message naming the key, file or row, never a panic, and create
/// no run directory.
#[test]
fn bad_inputs_exit_1_with_a_message_naming_what_is_wrong() {
    let dir = scratch("vi", "bad");
    let mut points = draw(20, 1);
    write_csv(&dir.join("train.csv"), &points);
    points[4].1 = 2.0;
    write_csv(&dir.join("two.csv"), &points);
    let train = "train = \"train.csv\"\nlabel = \"y\"";
    for (name, data, rest, needles) in [
        (
            "label-two",
            "train = \"two.csv\"\nlabel = \"y\"",
            "",
            vec!["two.csv", "row 6 (data row 5)", "label 2"],
        ),
        (
            "unknown-column",
            "train = \"train.csv\"\nlabel = \"default\"",
            "",
            vec!["train.csv", "data.label = column \"default\"", "x1, x2, y"],
        ),
        (
            "mcef-skew-t",
            train,
            "family = \"skew-t\"\n[train]\nmethod = \"mcef\"\n",
            vec!["train.method = \"mcef\"", "skew-normal"],
        ),
        ("prior-zero", train, "", vec!["model.prior_scale", "got 0"]),
        (
            "no-labels",
            "train = \"train.csv\"",
            "",
            vec!["data.label", "data.labels"],
        ),
        (
            "missing-file",
            "train = \"nowhere.csv\"\nlabel = \"y\"",
            "",
            vec!["nowhere.csv"],
        ),
    ] {
        let path = config(&dir, name, data, rest);
        let out = dir.join(format!("run-{name}"));
        let mut args = vec!["vi", path.to_str().unwrap(), "--out", out.to_str().unwrap()];
        if name == "prior-zero" {
            args.extend(["--set", "model.prior_scale=0"]);
        }
        let output = helmholtz(&args);
        let message = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {message}");
        for needle in needles {
            assert!(message.contains(needle), "{name}: {message}");
        }
        assert!(!message.contains("panicked"), "{name}: {message}");
        assert_eq!(message.matches("error:").count(), 1, "{name}: {message}");
        assert!(!out.exists(), "{name}: a run directory was created");
    }
    // A value of the wrong type names its key and line; a vi config given to `fit` says which
    // command it is for.
    let path = config(&dir, "typed", train, "family = 3\n");
    let output = helmholtz(&["vi", path.to_str().unwrap()]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("model.family") && message.contains("typed.toml:"),
        "{message}"
    );
    let path = config(&dir, "elsewhere", train, "kind = \"logistic-regression\"\n");
    let output = helmholtz(&["fit", path.to_str().unwrap()]);
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(message.contains("helmholtz vi"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shipped example (configs/vi-logistic.toml on examples/data) runs from another directory:
/// its data paths resolve against the config's folder and are recorded absolute.
#[test]
fn the_shipped_example_runs_from_any_directory() {
    let dir = scratch("vi", "example");
    let config = common::repo_root().join("configs/vi-logistic.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .current_dir(&dir)
        .args(["vi", config.to_str().unwrap(), "--quiet"])
        .args([
            "--set",
            "train.iterations=200",
            "--set",
            "train.final_draws=2000",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let run = dir.join("runs/vi-logistic");
    let summary = json(&run.join("summary.json"));
    assert_eq!(
        (summary["points"].as_u64(), summary["weights"].as_u64()),
        (Some(300), Some(4))
    );
    assert_eq!(summary["test"]["points"], 100);
    let posterior = json(&run.join("posterior.json"));
    assert_eq!(
        posterior["features"],
        serde_json::json!(["income", "debt_ratio", "age", "intercept"])
    );
    let resolved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let table: toml::Table = toml::from_str(&resolved).unwrap();
    let train = table["data"]["train"].as_str().unwrap();
    assert!(
        Path::new(train).is_absolute() && Path::new(train).exists(),
        "{train}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
