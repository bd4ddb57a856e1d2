//! `helmholtz mle` through the binary, on files drawn in the test from known parameters with the
//! library's samplers and written as CSV and as NPY:
//!
//! * recovery: every fitted parameter lies within 4 asymptotic standard errors of the truth.
//!   The standard errors are those of the maximum-likelihood estimate of n rows,
//!   SE_i = √((H⁻¹)_ii / n) with H the Hessian of the mean NLL per row at the truth (the observed
//!   information, by central differences): tolerances c_i/√n with c_i = 4√((H⁻¹)_ii), which
//!   shrink as n grows. An asymptotically normal estimate leaves ±4 SE with probability 6e-5;
//! * speed: SNGD reaches each baseline's best training NLL in fewer steps than the baseline
//!   took to reach it (read from both runs' metrics.jsonl);
//! * the same rows as CSV and as NPY give the same NLL at the shared start;
//! * `eval --data`, `sample -o`, a resume that continues bit for bit, and bad inputs that exit 1
//!   with a message naming the key, file or row.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;
use helmholtz::data::npy::write_npy;
use helmholtz::data::table::write_csv;
use helmholtz::dist::copula::StudentTCopula;
use helmholtz::dist::negative_binomial::Counts;
use helmholtz::dist::skew::{SkewNormal, SkewT};
use helmholtz::math::linalg::cholesky;
use helmholtz::math::rng::Stream;
use helmholtz::math::special::negative_binomial_draw;
use serde_json::Value;

use common::{repo_root, scratch, text};

fn helmholtz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(args)
        .output()
        .unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// NLLs within this many nats count as equal: converged runs differ in the last digits of a
/// rounded sum (by about 1e-14 here), far below the statistical error of an NLL (about 1/√n).
const ROUNDING: f64 = 1e-9;

/// A finished run: its directory, metrics and parameters.
struct Fit {
    dir: PathBuf,
    metrics: Vec<Value>,
    params: Value,
}

impl Fit {
    fn read(dir: PathBuf) -> Fit {
        let metrics =
            helmholtz::run::read_metrics(&dir.join(helmholtz::run::METRICS_FILE)).unwrap();
        let params: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("params.json")).unwrap())
                .unwrap();
        Fit {
            dir,
            metrics,
            params,
        }
    }

    /// (step, train NLL) at every evaluation.
    fn curve(&self) -> Vec<(u64, f64)> {
        self.metrics
            .iter()
            .map(|r| {
                (
                    r["step"].as_u64().unwrap(),
                    r["train_nll"].as_f64().unwrap(),
                )
            })
            .collect()
    }

    /// The lowest training NLL and the first step that reached it (within [`ROUNDING`]).
    fn best(&self) -> (u64, f64) {
        let best = self
            .curve()
            .into_iter()
            .map(|(_, v)| v)
            .fold(f64::INFINITY, f64::min);
        (self.reaches(best).unwrap(), best)
    }

    /// The first step whose training NLL is at most `target` (within [`ROUNDING`]).
    fn reaches(&self, target: f64) -> Option<u64> {
        self.curve()
            .into_iter()
            .find(|&(_, v)| v <= target + ROUNDING)
            .map(|(s, _)| s)
    }

    fn summary(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("summary.json")).unwrap())
            .unwrap()
    }
}

/// The runs start at the same NLL (up to the rounding of the start's coordinates), so their
/// files (CSV and NPY) hold the same rows: one count changed would move it by more than 1e-5.
fn assert_same_start(a: &Fit, b: &Fit) {
    let (x, y) = (a.curve()[0], b.curve()[0]);
    assert!(x.0 == 0 && (x.1 - y.1).abs() < ROUNDING, "{x:?} vs {y:?}");
}

/// Writes `NAME.toml` in `dir` (data paths relative to it) and runs `helmholtz mle` on it.
fn mle(dir: &Path, name: &str, config: &str, sets: &[&str]) -> Fit {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, format!("name = \"{name}\"\n{config}")).unwrap();
    let out = dir.join(name);
    let mut args = vec!["mle", path_str(&file), "--quiet", "--out", path_str(&out)];
    for set in sets {
        args.extend(["--set", set]);
    }
    let output = helmholtz(&args);
    assert!(output.status.success(), "{name}: {}", text(&output));
    Fit::read(out)
}

/// Asserts that SNGD reaches each baseline's best training NLL in fewer steps than the
/// baseline needed; returns the lines of the comparison.
fn assert_sngd_leads(family: &str, sngd: &Fit, baselines: &[(&str, &Fit)]) -> String {
    let mut report = String::new();
    for (name, baseline) in baselines {
        let (steps, best) = baseline.best();
        let reached = sngd.reaches(best);
        report.push_str(&format!(
            "{family}: {name} best train NLL {best:.8} at step {steps}; SNGD reaches it at step {reached:?}\n"
        ));
        assert!(
            reached.is_some_and(|r| r < steps),
            "{family}: SNGD {:?} does not reach {name}'s best {best} (step {steps}) sooner",
            sngd.curve()
        );
    }
    report
}

/// SE_i = √((H⁻¹)_ii / n), H the Hessian of the mean NLL `f` at `theta` by central differences.
fn standard_errors(f: impl Fn(&[f64]) -> f64, theta: &[f64], n: usize) -> Vec<f64> {
    let k = theta.len();
    let h: Vec<f64> = theta.iter().map(|t| 1e-4 * t.abs().max(1.0)).collect();
    let at = |moves: &[(usize, f64)]| {
        let mut x = theta.to_vec();
        for &(i, sign) in moves {
            x[i] += sign * h[i];
        }
        f(&x)
    };
    let centre = f(theta);
    let hessian = Mat::from_fn(k, k, |i, j| {
        if i == j {
            (at(&[(i, 1.0)]) - 2.0 * centre + at(&[(i, -1.0)])) / (h[i] * h[i])
        } else {
            (at(&[(i, 1.0), (j, 1.0)]) - at(&[(i, 1.0), (j, -1.0)]) - at(&[(i, -1.0), (j, 1.0)])
                + at(&[(i, -1.0), (j, -1.0)]))
                / (4.0 * h[i] * h[j])
        }
    });
    let inverse = cholesky(&hessian, "H").unwrap().inverse();
    (0..k)
        .map(|i| (inverse[(i, i)] / n as f64).sqrt())
        .collect()
}

/// Asserts |fitted − truth| ≤ 4 SE for every parameter; returns the table.
fn assert_recovered(
    family: &str,
    names: &[String],
    fitted: &[f64],
    truth: &[f64],
    se: &[f64],
) -> String {
    let mut report = format!("{family}: parameter, truth, fitted, |error| / SE\n");
    let mut worst: f64 = 0.0;
    for i in 0..truth.len() {
        let z = (fitted[i] - truth[i]).abs() / se[i];
        worst = worst.max(z);
        report.push_str(&format!(
            "  {:<8} {:>10.5} {:>10.5} {:>6.2}\n",
            names[i], truth[i], fitted[i], z
        ));
    }
    assert!(worst <= 4.0, "{report}");
    report
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn matrix(value: &Value) -> Mat<f64> {
    let rows: Vec<Vec<f64>> = value.as_array().unwrap().iter().map(numbers).collect();
    Mat::from_fn(rows.len(), rows.len(), |i, j| rows[i][j])
}

/// (ξ, vech Ω, η) of a skew-normal as one vector, with names.
fn skew_vector(xi: &[f64], omega: &Mat<f64>, eta: &[f64]) -> (Vec<f64>, Vec<String>) {
    let d = xi.len();
    let mut theta = xi.to_vec();
    let mut names: Vec<String> = (0..d).map(|j| format!("ξ{j}")).collect();
    for a in 0..d {
        for b in 0..=a {
            theta.push(omega[(a, b)]);
            names.push(format!("Ω{a}{b}"));
        }
    }
    theta.extend(eta);
    names.extend((0..d).map(|j| format!("η{j}")));
    (theta, names)
}

fn skew_from_vector(theta: &[f64], d: usize) -> Option<SkewNormal> {
    let mut omega = Mat::zeros(d, d);
    let mut k = d;
    for a in 0..d {
        for b in 0..=a {
            omega[(a, b)] = theta[k];
            omega[(b, a)] = theta[k];
            k += 1;
        }
    }
    SkewNormal::new(theta[..d].to_vec(), omega, theta[k..k + d].to_vec()).ok()
}

fn write_both(dir: &Path, stem: &str, columns: &[&str], values: &Mat<f64>) {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    write_csv(
        &dir.join(format!("{stem}.csv")),
        &columns,
        values.as_ref(),
        false,
    )
    .unwrap();
    write_npy(&dir.join(format!("{stem}.npy")), values.as_ref(), false).unwrap();
}

fn counts_matrix(counts: &[u64]) -> Mat<f64> {
    Mat::from_fn(counts.len(), 1, |i, _| counts[i] as f64)
}

/// NB(5, 1/11), n = 1000: SNGD on the CSV, BFGS and GD on the NPY; a held-out file evaluated
/// by `eval --data`; a run interrupted by a smaller step limit and resumed ends where an
/// uninterrupted run ends.
#[test]
fn negative_binomial_recovered_sngd_leads_eval_and_resume() {
    let dir = scratch("mle", "nb");
    let (r, s, n) = (5.0, 1.0 / 11.0, 1000);
    let mut rng = Stream::new(11, &[]);
    let draws: Vec<u64> = (0..n + 300)
        .map(|_| negative_binomial_draw(r, s, &mut rng))
        .collect();
    write_both(&dir, "train", &["visits"], &counts_matrix(&draws[..n]));
    write_both(&dir, "test", &["visits"], &counts_matrix(&draws[n..]));
    let config = "[data]\ntrain = \"train.csv\"\ntest = \"test.csv\"\n[model]\nfamily = \"negative-binomial\"\n[train]\niterations = 40\n";
    // A path given by --set resolves against the current directory: absolute here.
    let npy = format!("data.train={}", dir.join("train.npy").display());
    let sngd = mle(&dir, "sngd", config, &[]);
    let bfgs = mle(&dir, "bfgs", config, &[&npy, "train.method=bfgs"]);
    let gd = mle(&dir, "gd", config, &[&npy, "train.method=gd"]);
    assert_same_start(&sngd, &bfgs);

    let counts = Counts::new(&draws[..n]).unwrap();
    let se = standard_errors(|t| counts.nll(t[0], t[1]).unwrap().0, &[r, s], n);
    let p = &sngd.params["params"];
    let fitted = [p["r"].as_f64().unwrap(), p["s"].as_f64().unwrap()];
    let mut report = assert_recovered(
        "negative binomial",
        &["r".into(), "s".into()],
        &fitted,
        &[r, s],
        &se,
    );
    report += &assert_sngd_leads("negative binomial", &sngd, &[("BFGS", &bfgs), ("GD", &gd)]);

    // eval --data on the held-out file gives the run's test NLL.
    let output = helmholtz(&["eval", path_str(&sngd.dir), "--data"]);
    assert!(!output.status.success());
    let test_csv = dir.join("test.csv");
    let output = helmholtz(&["eval", path_str(&sngd.dir), "--data", path_str(&test_csv)]);
    assert!(output.status.success(), "{}", text(&output));
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let test_nll = sngd.summary()["test_nll"].as_f64().unwrap();
    assert!(
        printed.contains("300 rows") && printed.contains(&format!("NLL {test_nll:.6}")),
        "{printed} vs {test_nll}"
    );

    // 25 steps, then resumed to 40: the parameters and NLLs of the uninterrupted run.
    let short = mle(&dir, "short", config, &["train.iterations=25"]);
    assert_eq!(short.summary()["steps"], 25);
    let output = helmholtz(&[
        "mle",
        "--resume",
        path_str(&short.dir),
        "--set",
        "train.iterations=40",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let resumed = Fit::read(short.dir.clone());
    assert_eq!(resumed.params["params"], sngd.params["params"]);
    assert_eq!(resumed.curve(), sngd.curve());
    eprintln!("{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A mixture of three negative binomials with means 300, 1500 and 4000 and s = 1/9 (the SNGD
/// paper's NB-mixture recipe with three components), n = 1000: SNGD on the NPY,
/// BFGS and GD on the CSV; `sample -o` draws as CSV with the fitted mixture's mean.
#[test]
fn negative_binomial_mixture_recovered_sngd_leads_and_samples() {
    let dir = scratch("mle", "nb-mixture");
    // r = m s/(1 − s) = m/8 for means m and s = 1/9.
    let (weights, r, s) = ([0.3, 0.4, 0.3], [37.5, 187.5, 500.0], [1.0 / 9.0; 3]);
    let n = 1000;
    let mut rng = Stream::new(12, &[]);
    let draws: Vec<u64> = (0..n)
        .map(|_| {
            let u = rng.uniform_f64();
            let j = if u < weights[0] {
                0
            } else if u < weights[0] + weights[1] {
                1
            } else {
                2
            };
            negative_binomial_draw(r[j], s[j], &mut rng)
        })
        .collect();
    write_both(&dir, "train", &["count"], &counts_matrix(&draws));
    let config = "[data]\ntrain = \"train.npy\"\n[model]\nfamily = \"nb-mixture\"\ncomponents = 3\n[train]\niterations = 40\ngrid = 200\n";
    let csv = format!("data.train={}", dir.join("train.csv").display());
    let sngd = mle(&dir, "sngd", config, &[]);
    let bfgs = mle(&dir, "bfgs", config, &[&csv, "train.method=bfgs"]);
    let gd = mle(&dir, "gd", config, &[&csv, "train.method=gd"]);
    assert_same_start(&sngd, &bfgs);

    // Components matched to the truth by their means; θ = (p0, p1, r0..r2, s0..s2).
    let components = sngd.params["params"]["components"].as_array().unwrap();
    let mut fitted: Vec<[f64; 4]> = components
        .iter()
        .map(|c| ["weight", "r", "s", "mean"].map(|k| c[k].as_f64().unwrap()))
        .collect();
    fitted.sort_by(|a, b| a[3].total_cmp(&b[3]));
    let theta = |p: [f64; 3], r: [f64; 3], s: [f64; 3]| {
        vec![p[0], p[1], r[0], r[1], r[2], s[0], s[1], s[2]]
    };
    let truth = theta(weights, r, s);
    let estimate = theta(
        [0, 1, 2].map(|j| fitted[j][0]),
        [0, 1, 2].map(|j| fitted[j][1]),
        [0, 1, 2].map(|j| fitted[j][2]),
    );
    let counts = Counts::new(&draws).unwrap();
    let nll = |t: &[f64]| {
        let p = [t[0], t[1], 1.0 - t[0] - t[1]];
        counts.mixture_nll(&p, &t[2..5], &t[5..8]).unwrap().0
    };
    let se = standard_errors(nll, &truth, n);
    let names: Vec<String> = ["p0", "p1", "r0", "r1", "r2", "s0", "s1", "s2"]
        .map(String::from)
        .to_vec();
    let mut report = assert_recovered("NB mixture", &names, &estimate, &truth, &se);
    report += &assert_sngd_leads("NB mixture", &sngd, &[("BFGS", &bfgs), ("GD", &gd)]);

    // Draws as CSV: the header names the column (x1: the NPY file had no names), and their mean
    // is the fit's within 5 standard errors.
    let out = dir.join("draws.csv");
    let output = helmholtz(&[
        "sample",
        path_str(&sngd.dir),
        "--n",
        "20000",
        "-o",
        path_str(&out),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let text_out = std::fs::read_to_string(&out).unwrap();
    let mut lines = text_out.lines();
    assert_eq!(lines.next(), Some("x1"));
    let values: Vec<f64> = lines.map(|l| l.parse().unwrap()).collect();
    assert_eq!(values.len(), 20000);
    assert!(values.iter().all(|v| v.fract() == 0.0 && *v >= 0.0));
    let mean = values.iter().sum::<f64>() / 20000.0;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 20000.0;
    let fitted_mean: f64 = fitted.iter().map(|c| c[0] * c[3]).sum();
    assert!(
        (mean - fitted_mean).abs() < 5.0 * (var / 20000.0).sqrt(),
        "{mean} vs {fitted_mean}"
    );
    let again = helmholtz(&[
        "sample",
        path_str(&sngd.dir),
        "--n",
        "5",
        "-o",
        path_str(&out),
    ]);
    assert!(!again.status.success() && text(&again).contains("--force"));
    eprintln!("{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The truth of the skew tests: ξ, η and a well-conditioned Ω with scales from 0.5 to 2 and
/// neighbouring correlations 0.3.
fn skew_truth(d: usize) -> SkewNormal {
    let xi = (0..d).map(|j| [1.0, -1.0, 0.5, 2.0, 0.0][j % 5]).collect();
    let eta = (0..d).map(|j| [2.0, -1.0, 0.5, 0.0, 1.0][j % 5]).collect();
    let scale = |j: usize| -> f64 { [1.0, 2.0, 0.5, 1.5, 1.0][j % 5] };
    let omega = Mat::from_fn(d, d, |a, b| {
        let c = match a.abs_diff(b) {
            0 => 1.0,
            1 => 0.3,
            _ => 0.0,
        };
        c * (scale(a) * scale(b)).sqrt()
    });
    SkewNormal::new(xi, omega, eta).unwrap()
}

/// The skew-normal's (ξ, Ω, η) of params.json (`key`: params or params_in_data_units).
fn fitted_skew(params: &Value) -> (Vec<f64>, Vec<String>) {
    skew_vector(
        &numbers(&params["xi"]),
        &matrix(&params["omega"]),
        &numbers(&params["eta"]),
    )
}

/// A skew-normal of dimension 5, n = 5000, standardised by the run: SNGD on the CSV (in the
/// centred coordinates, λ by quasi-Newton steps in the decrease search), Adam with either root
/// on the NPY at learning rate 0.1 (Adam-precision's best of 0.03, 0.05, 0.07, 0.08, 0.1, 0.12,
/// 0.15, 0.2, 0.3 and 0.5 on this file), all on the whole file from the moment start; the
/// parameters in the data's units recovered; SNGD ahead of both baselines; a minibatch run
/// resumed in the middle of a block ends where an uninterrupted one ends (BFGS's estimate of λ
/// resumed with it); `eval --data` on the test file gives the run's test NLL.
#[test]
fn skew_normal_recovered_and_compared_with_adam() {
    let dir = scratch("mle", "skew-normal");
    let (d, n) = (5, 5000);
    let truth = skew_truth(d);
    let all = truth.sample(n + 500, &mut Stream::new(13, &[])).unwrap();
    let train = all.subrows(0, n).to_owned();
    let columns = ["a", "b", "c", "d", "e"];
    write_both(&dir, "train", &columns, &train);
    write_both(&dir, "test", &columns, &all.subrows(n, 500).to_owned());
    let config = "[data]\ntrain = \"train.csv\"\ntest = \"test.csv\"\ntransform = \"standardize\"\n[model]\nfamily = \"skew-normal\"\n[train]\niterations = 400\neval_every = 1\n";
    let npy = format!("data.train={}", dir.join("train.npy").display());
    let centred = [
        "train.lr_theta=1.0",
        "train.coordinates=centred",
        "train.lambda_step=quasi-newton",
        "train.search=decrease",
    ];
    let sngd = mle(&dir, "sngd", config, &centred);
    let adam = |name: &str, method: &str| {
        let method = format!("train.method={method}");
        mle(&dir, name, config, &[&npy, &method, "train.lr_adam=0.1"])
    };
    let covariance = adam("cov", "adam-covariance");
    let precision = adam("prec", "adam-precision");
    assert_same_start(&sngd, &covariance);

    let (truth_theta, names) = skew_vector(&truth.xi, &truth.omega, &truth.eta);
    let (estimate, _) = fitted_skew(&sngd.params["params_in_data_units"]);
    let nll = |t: &[f64]| {
        skew_from_vector(t, d).map_or(f64::INFINITY, |q| q.nll(train.as_ref()).unwrap())
    };
    let se = standard_errors(nll, &truth_theta, n);
    let mut report = assert_recovered("skew-normal", &names, &estimate, &truth_theta, &se);
    report += &assert_sngd_leads(
        "skew-normal",
        &sngd,
        &[
            ("Adam (covariance)", &covariance),
            ("Adam (precision)", &precision),
        ],
    );
    // In batches of 200 drawn with replacement: 25 steps (half way through a block of 10),
    // then resumed to 60, end where 60 steps in one go end.
    let batches = |iterations: &'static str| -> Vec<&'static str> {
        let mut overrides = centred.to_vec();
        overrides.extend(["train.batch=200", iterations]);
        overrides
    };
    let whole = mle(&dir, "whole", config, &batches("train.iterations=60"));
    let part = mle(&dir, "part", config, &batches("train.iterations=25"));
    let output = helmholtz(&[
        "mle",
        "--resume",
        path_str(&part.dir),
        "--set",
        "train.iterations=60",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let resumed = Fit::read(part.dir.clone());
    assert_eq!(resumed.params["params"], whole.params["params"]);
    let blocks = |fit: &Fit| -> Vec<(u64, f64)> {
        fit.curve()
            .into_iter()
            .filter(|(s, _)| s % 10 == 0)
            .collect()
    };
    assert_eq!(blocks(&resumed), blocks(&whole));

    let test = dir.join("test.npy");
    let output = helmholtz(&["eval", path_str(&sngd.dir), "--data", path_str(&test)]);
    assert!(output.status.success(), "{}", text(&output));
    let test_nll = sngd.summary()["test_nll"].as_f64().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        printed.contains(&format!("NLL {test_nll:.6}")),
        "{printed} vs {test_nll}"
    );
    eprintln!("{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A skew-t of dimension 3 with ν = 10, n = 5000: SNGD on the NPY, Adam on the CSV, as the
/// skew-normal's; ξ, Ω, η and ν recovered; `sample -o` writes NPY draws.
#[test]
fn skew_t_recovered_and_compared_with_adam() {
    let dir = scratch("mle", "skew-t");
    let (d, n) = (3, 5000);
    let base = skew_truth(d);
    let truth = SkewT {
        base: base.clone(),
        nu: 10.0,
    };
    let train = truth.sample(n, &mut Stream::new(14, &[])).unwrap();
    write_both(&dir, "train", &["a", "b", "c"], &train);
    let config =
        "[data]\ntrain = \"train.npy\"\n[model]\nfamily = \"skew-t\"\n[train]\niterations = 300\n";
    let csv = format!("data.train={}", dir.join("train.csv").display());
    let sngd = mle(
        &dir,
        "sngd",
        config,
        &[
            "train.lr_theta=1.0",
            "train.lr_lambda=0.1",
            "train.search=decrease",
        ],
    );
    let adam = |name: &str, method: &str| {
        let method = format!("train.method={method}");
        mle(&dir, name, config, &[&csv, &method, "train.lr_adam=0.1"])
    };
    let covariance = adam("cov", "adam-covariance");
    let precision = adam("prec", "adam-precision");
    assert_same_start(&sngd, &covariance);

    let (mut truth_theta, mut names) = skew_vector(&base.xi, &base.omega, &base.eta);
    truth_theta.push(truth.nu);
    names.push("ν".into());
    let p = &sngd.params["params"];
    let (mut estimate, _) = fitted_skew(p);
    estimate.push(p["nu"].as_f64().unwrap());
    let k = truth_theta.len();
    let nll = |t: &[f64]| match skew_from_vector(&t[..k - 1], d) {
        Some(base) if t[k - 1] > 0.0 => SkewT { base, nu: t[k - 1] }.nll(train.as_ref()).unwrap(),
        _ => f64::INFINITY,
    };
    let se = standard_errors(nll, &truth_theta, n);
    let mut report = assert_recovered("skew-t", &names, &estimate, &truth_theta, &se);
    report += &assert_sngd_leads(
        "skew-t",
        &sngd,
        &[
            ("Adam (covariance)", &covariance),
            ("Adam (precision)", &precision),
        ],
    );
    let out = dir.join("draws.npy");
    let output = helmholtz(&[
        "sample",
        path_str(&sngd.dir),
        "--n",
        "100",
        "-o",
        path_str(&out),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let draws = helmholtz::data::npy::read_npy(&out).unwrap();
    assert_eq!(draws.shape, vec![100, 3]);
    let png = dir.join("draws.png");
    let output = helmholtz(&["sample", path_str(&sngd.dir), "-o", path_str(&png)]);
    assert!(!output.status.success() && text(&output).contains(".csv or .npy"));
    eprintln!("{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A t copula of dimension 3 with ν = 5, n = 5000, in batches of 500 drawn with replacement:
/// SNGD on the CSV, Adam on the NPY; R and ν recovered, SNGD ahead of both baselines.
#[test]
fn t_copula_recovered_sngd_leads_adam() {
    let dir = scratch("mle", "copula");
    let (d, n) = (3, 5000);
    let r = Mat::from_fn(d, d, |a, b| {
        [[1.0, 0.5, -0.3], [0.5, 1.0, 0.2], [-0.3, 0.2, 1.0]][a][b]
    });
    let truth = StudentTCopula::new(r, 5.0).unwrap();
    let train = truth.sample(n, &mut Stream::new(15, &[])).unwrap();
    write_both(&dir, "train", &["a", "b", "c"], &train);
    let config = "[data]\ntrain = \"train.csv\"\n[model]\nfamily = \"t-copula\"\n[train]\niterations = 200\nbatch = 500\neval_every = 20\n";
    let npy = format!("data.train={}", dir.join("train.npy").display());
    let sngd = mle(&dir, "sngd", config, &[]);
    let covariance = mle(&dir, "cov", config, &[&npy, "train.method=adam-covariance"]);
    let precision = mle(&dir, "prec", config, &[&npy, "train.method=adam-precision"]);
    assert_same_start(&sngd, &covariance);

    let theta = |r: &Mat<f64>, nu: f64| vec![r[(1, 0)], r[(2, 0)], r[(2, 1)], nu];
    let names: Vec<String> = ["R10", "R20", "R21", "ν"].map(String::from).to_vec();
    let truth_theta = theta(&truth.r, truth.nu);
    let p = &sngd.params["params"];
    let estimate = theta(&matrix(&p["r"]), p["nu"].as_f64().unwrap());
    let nll = |t: &[f64]| {
        let r = Mat::from_fn(d, d, |a, b| match (a.max(b), a.min(b)) {
            (i, j) if i == j => 1.0,
            (1, 0) => t[0],
            (2, 0) => t[1],
            _ => t[2],
        });
        StudentTCopula::new(r, t[3]).map_or(f64::INFINITY, |c| c.nll(train.as_ref()).unwrap())
    };
    let se = standard_errors(nll, &truth_theta, n);
    let mut report = assert_recovered("t copula", &names, &estimate, &truth_theta, &se);
    report += &assert_sngd_leads(
        "t copula",
        &sngd,
        &[
            ("Adam (covariance)", &covariance),
            ("Adam (precision)", &precision),
        ],
    );
    eprintln!("{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad inputs exit 1 with one message naming the row, key or file, create no run directory,
/// and never panic.
#[test]
fn bad_inputs_are_refused_with_a_message_naming_what_is_wrong() {
    let dir = scratch("mle", "bad");
    std::fs::write(dir.join("counts.csv"), "visits\n3\n5\n-2\n7\n").unwrap();
    std::fs::write(dir.join("halves.csv"), "a,b\n0.5,2\n").unwrap();
    std::fs::write(dir.join("uniform.csv"), "a,b\n0.2,0.3\n1.0,0.5\n").unwrap();
    std::fs::write(dir.join("points.csv"), "a,b\n0.2,0.3\n1.5,0.5\n0.7,2.5\n").unwrap();
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "negative-count",
            "[data]\ntrain = \"counts.csv\"\n[model]\nfamily = \"negative-binomial\"\n",
            &["counts.csv", "row 4", "-2 is not a count"],
        ),
        (
            "fraction",
            "[data]\ntrain = \"halves.csv\"\ncolumn = \"a\"\n[model]\nfamily = \"nb-mixture\"\ncomponents = 2\n",
            &["halves.csv", "row 2", "0.5 is not a count"],
        ),
        (
            "copula-range",
            "[data]\ntrain = \"uniform.csv\"\n[model]\nfamily = \"t-copula\"\n",
            &[
                "uniform.csv",
                "row 3",
                "column a",
                "between 0 and 1",
                "ranks",
            ],
        ),
        (
            "wrong-method",
            "[data]\ntrain = \"points.csv\"\n[model]\nfamily = \"skew-normal\"\n[train]\nmethod = \"bfgs\"\n",
            &[
                "train.method",
                "skew-normal",
                "sngd, adam-covariance, adam-precision",
            ],
        ),
        (
            "quasi-newton-validity",
            "[data]\ntrain = \"points.csv\"\n[model]\nfamily = \"skew-normal\"\n[train]\nlambda_step = \"quasi-newton\"\n",
            &["train.lambda_step", "train.search = \"decrease\""],
        ),
        (
            "centred-skew-t",
            "[data]\ntrain = \"points.csv\"\n[model]\nfamily = \"skew-t\"\n[train]\ncoordinates = \"centred\"\n",
            &["train.coordinates", "skew-normal", "skew-t"],
        ),
        (
            "missing-file",
            "[data]\ntrain = \"nowhere.csv\"\n[model]\nfamily = \"skew-t\"\n",
            &["nowhere.csv"],
        ),
    ];
    for (name, config, words) in cases {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, format!("name = \"{name}\"\n{config}")).unwrap();
        let out = dir.join(name);
        let output = helmholtz(&["mle", path_str(&file), "--out", path_str(&out)]);
        let message = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {message}");
        for word in words {
            assert!(message.contains(word), "{name}: {word:?} not in {message}");
        }
        assert!(!message.contains("panicked"), "{name}: {message}");
        assert_eq!(message.matches("error:").count(), 1, "{name}: {message}");
        assert!(!out.exists(), "{name}: nothing is created");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The shipped example, run from another directory: its data path resolves against the config's
/// folder, and the resolved config records it absolutely.
#[test]
fn the_shipped_example_fits_from_any_directory() {
    let dir = scratch("mle", "example");
    let config = repo_root().join("configs/mle-nb.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(["mle", path_str(&config), "--out", "run"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("negative binomial NB(r, s) of visits"),
        "{printed}"
    );
    let fit = Fit::read(dir.join("run"));
    assert_eq!(fit.summary()["rows"], 300);
    let resolved: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("run/config.toml")).unwrap()).unwrap();
    let train = Path::new(resolved["data"]["train"].as_str().unwrap());
    assert!(train.is_absolute(), "{resolved}");
    assert_eq!(
        train.canonicalize().unwrap(),
        repo_root().join("examples/data/counts.csv")
    );
    for plot in ["nll-by-step.png", "nll-by-seconds.png"] {
        assert!(dir.join("run").join(plot).exists(), "{plot}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
