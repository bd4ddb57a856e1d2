//! A table of bad inputs, one row per case of issue 16 item 5: each exits with code 1 and a
//! message that names what is wrong (the fragment in the table), printed once, with no panic,
//! no abort and no Rust debug text. The cases about sizes run again under `ulimit -v`, where an
//! allocation the estimate missed would abort (exit 134) instead of being refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{repo_root, scratch, text};

const BIN: &str = env!("CARGO_BIN_EXE_helmholtz");

/// The address-space limit (KiB) of the size cases: large enough for the binary and its
/// threads, far below every estimate refused.
const ULIMIT_KIB: u64 = 4_000_000;

fn config(name: &str) -> String {
    repo_root()
        .join("configs")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The files and runs the cases refer to, in a scratch directory.
struct Fixtures {
    dir: PathBuf,
    /// A short quickstart run (finite checkpoint).
    run: String,
    /// A copy of it whose last checkpoint holds a NaN.
    nan_run: String,
    /// An existing PNG.
    png: String,
    /// The quickstart with `epochs = "ten"`, and the line of that key.
    typo: (String, usize),
}

fn fixtures() -> Fixtures {
    let dir = scratch("bad-inputs", "table");
    let run = dir.join("run");
    let out = Command::new(BIN)
        .args([
            "train",
            &config("quickstart.toml"),
            "--set",
            "model.hidden=[4]",
            "--set",
            "train.epochs=1",
            "--set",
            "eval.every=0",
            "--set",
            "eval.test_at=[]",
            "--set",
            "eval.final_k=1",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let nan_run = dir.join("nan-run");
    copy_dir(&run, &nan_run);
    let params = nan_run.join("checkpoints/last/params.safetensors");
    let mut tensors = helmholtz::run::checkpoint::read_all_tensors(&params).unwrap();
    tensors.tensors[0].data[0] = f32::NAN;
    helmholtz::run::checkpoint::write_tensors(&params, &tensors).unwrap();
    let png = dir.join("exists.png");
    std::fs::write(&png, b"not overwritten").unwrap();
    // A config with a type error on a known line.
    let text = std::fs::read_to_string(config("quickstart.toml"))
        .unwrap()
        .replace("epochs = 300", "epochs = \"ten\"");
    let line = text.lines().position(|l| l.contains("\"ten\"")).unwrap() + 1;
    std::fs::write(dir.join("typo.toml"), text).unwrap();
    // Data for the fit cases (values in [0, 1]); the config reads pts.csv from its own folder.
    std::fs::write(
        dir.join("constant.csv"),
        "0.1,0.5,0.2\n0.3,0.5,0.1\n0.2,0.5,0.7\n",
    )
    .unwrap();
    std::fs::write(dir.join("one-row.csv"), "0.1,0.5,0.2\n").unwrap();
    std::fs::write(dir.join("same-rows.csv"), "0.1,0.5,0.2\n".repeat(3)).unwrap();
    std::fs::write(
        dir.join("fit.toml"),
        "name = \"fit\"\n[data]\nsource = \"csv\"\ntrain = \"constant.csv\"\n[model]\nkind = \"factor-analysis\"\nlatents = 1\n",
    )
    .unwrap();
    // Headers that announce far more values than any machine holds (the bodies are absent).
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }";
    let padded = format!("{header:<117}\n");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((padded.len() as u16).to_le_bytes());
    npy.extend(padded.as_bytes());
    npy.extend([0u8; 64]);
    std::fs::write(dir.join("huge.npy"), npy).unwrap();
    let mut idx = vec![0u8, 0, 8, 3];
    for d in [100_000_000u32, 1000, 1000] {
        idx.extend(d.to_be_bytes());
    }
    idx.extend([0u8; 16]);
    std::fs::write(dir.join("huge.idx"), idx).unwrap();
    Fixtures {
        run: run.to_string_lossy().into_owned(),
        nan_run: nan_run.to_string_lossy().into_owned(),
        png: png.to_string_lossy().into_owned(),
        typo: (dir.join("typo.toml").to_string_lossy().into_owned(), line),
        dir,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// One row: the arguments, a fragment the message must hold, and whether the case is about a
/// size (then it also runs under `ulimit -v`).
struct Case {
    args: Vec<String>,
    expect: String,
    size: bool,
}

fn case(args: &[&str], expect: &str) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        expect: expect.to_string(),
        size: false,
    }
}

fn size_case(args: &[&str], expect: &str) -> Case {
    Case {
        size: true,
        ..case(args, expect)
    }
}

fn table(f: &Fixtures) -> Vec<Case> {
    let (typo, typo_line) = (&f.typo.0, f.typo.1);
    let quickstart = config("quickstart.toml");
    let q = quickstart.as_str();
    let out = |name: &str| f.dir.join("out").join(name).to_string_lossy().into_owned();
    let new_png = f.dir.join("new.png").to_string_lossy().into_owned();
    let small_skew = [
        "--dim",
        "2",
        "--train",
        "10",
        "--test",
        "10",
        "--iterations",
        "2",
    ];
    let skew = |extra: &[&str], name: &str| -> Vec<String> {
        ["experiment", "sngd-skew-normal"]
            .iter()
            .chain(&small_skew)
            .chain(extra)
            .map(|s| s.to_string())
            .chain(["--out".to_string(), out(name)])
            .collect()
    };
    let strings = |v: Vec<String>, expect: &str| Case {
        args: v,
        expect: expect.into(),
        size: false,
    };
    let count = "is not accepted: give a count of at least 1";
    vec![
        // A type error in a config or a --set names the key and where it came from.
        case(
            &["train", typo],
            &format!(
                "train.epochs ({typo}:{typo_line}): invalid type: string \"ten\", expected a non-negative integer"
            ),
        ),
        case(
            &["train", q, "--set", "train.epochs=ten"],
            "train.epochs (from --set train.epochs=ten): invalid type",
        ),
        case(
            &["train", q, "--set", "train.learning_rate=0.1"],
            "train.learning_rate (from --set train.learning_rate=0.1): unknown field `learning_rate`",
        ),
        case(
            &["train", q, "--set", "train.epochs"],
            "--set train.epochs: not of the form key=value",
        ),
        // A config meant for another command says which.
        case(&["fit", q], "is a config for `helmholtz train`"),
        case(&["sparse", q], "is a config for `helmholtz train`"),
        case(
            &["train", &config("entropy-ppca.toml")],
            "is a config for `helmholtz fit`",
        ),
        case(
            &["bench", &config("entropy-ppca.toml")],
            "is a config for `helmholtz fit`",
        ),
        case(
            &["fit", &config("bars-full.toml")],
            "is a config for `helmholtz sparse`",
        ),
        // Learning rates and step sizes: NaN, ±inf, zero and negatives alike.
        case(
            &["train", q, "--set", "optimizer.lr=0"],
            "optimizer.lr must be a finite positive number",
        ),
        case(
            &["train", q, "--set", "optimizer.lr=nan"],
            "optimizer.lr must be a finite positive number",
        ),
        strings(
            skew(&["--lr-theta", "0"], "lr-theta"),
            "must be a finite positive number (for example 0.01), got 0",
        ),
        strings(
            skew(&["--lr-adam=-1"], "lr-adam"),
            "must be a finite positive number (for example 0.01), got -1",
        ),
        strings(
            skew(&["--lr-lambda", "inf"], "lr-lambda"),
            "must be a finite positive number (for example 0.01), got inf",
        ),
        // Counts that would make an empty or all-NaN table.
        case(
            &["experiment", "sngd-nb", "--iterations", "0"],
            &format!("'--iterations <ITERATIONS>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-nb", "--inits", "0"],
            &format!("'--inits <INITS>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-nb", "--n", "0"],
            &format!("'--n <N>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-nb-mixture", "--k", "0"],
            &format!("'--k <K>': 0 {count}"),
        ),
        case(
            &["experiment", "fisher-rao-elbo", "--points", "0"],
            &format!("'--points <POINTS>': 0 {count}"),
        ),
        case(
            &["experiment", "fisher-rao-elbo", "--targets", "0"],
            &format!("'--targets <TARGETS>': 0 {count}"),
        ),
        case(
            &["experiment", "nrws-vs-rws", "--epochs", "0"],
            &format!("'--epochs <EPOCHS>': 0 {count}"),
        ),
        case(
            &["experiment", "nrws-vs-rws", "--seeds", "0"],
            &format!("'--seeds <SEEDS>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-skew-normal", "--test", "0"],
            &format!("'--test <TEST>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-skew-t", "--eval-every", "0"],
            &format!("'--eval-every <EVAL_EVERY>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-copula", "--batch", "0"],
            &format!("'--batch <BATCH>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-vi", "--dim", "0"],
            &format!("'--dim <DIM>': 0 {count}"),
        ),
        case(
            &["experiment", "sngd-vi", "--iterations", "ten"],
            "\"ten\" is not accepted: give a whole number of at least 1",
        ),
        case(
            &["eval", &f.run, "--k", "0"],
            &format!("'--k <K>': 0 {count}"),
        ),
        case(
            &["eval", &f.run, "--points", "0"],
            &format!("'--points <POINTS>': 0 {count}"),
        ),
        case(
            &["eval", &f.run, "--entropy", "--samples", "0"],
            &format!("'--samples <SAMPLES>': 0 {count}"),
        ),
        case(
            &["sparse", &config("bars-full.toml"), "--seeds", "0"],
            &format!("'--seeds <SEEDS>': 0 {count}"),
        ),
        case(
            &["bench", q, "--batches", "0"],
            &format!("'--batches <BATCHES>': 0 {count}"),
        ),
        case(
            &["sample", &f.run, "--n", "0", "-o", &new_png],
            "--n 0 draws nothing",
        ),
        // Sizes: refused with the estimate before anything is allocated.
        size_case(
            &[
                "train",
                q,
                "--set",
                "model.hidden=[100000000]",
                "--out",
                &out("hidden"),
            ],
            "a Helmholtz machine of layer sizes [64, 100000000] (K = 10) needs about",
        ),
        size_case(
            &["bench", q, "--set", "model.hidden=[100000000]"],
            "needs about",
        ),
        size_case(
            &[
                "experiment",
                "sngd-skew-normal",
                "--dim",
                "1000000",
                "--out",
                &out("dim"),
            ],
            "the skew-normal task with d = 1000000, 9000 training and 1000 held-out points needs about",
        ),
        size_case(
            &[
                "experiment",
                "sngd-skew-t",
                "--train",
                "100000000",
                "--out",
                &out("train"),
            ],
            "needs about",
        ),
        size_case(
            &[
                "experiment",
                "sngd-copula",
                "--dim",
                "1000000",
                "--out",
                &out("copula"),
            ],
            "needs about",
        ),
        size_case(
            &[
                "experiment",
                "sngd-vi",
                "--dim",
                "1000000",
                "--out",
                &out("vi"),
            ],
            "needs about",
        ),
        size_case(
            &[
                "experiment",
                "sngd-nb",
                "--n",
                "1000000000000",
                "--out",
                &out("nb"),
            ],
            "sngd-nb with n = 1000000000000 needs about",
        ),
        size_case(
            &[
                "experiment",
                "fisher-rao-elbo",
                "--points",
                "10000000000000",
                "--out",
                &out("fr"),
            ],
            "needs about",
        ),
        size_case(
            &["eval", &f.run, "--k", "1000000000000000"],
            "importance sampling with K = 1000000000000000 needs about",
        ),
        size_case(
            &["sample", &f.run, "--n", "100000000000", "-o", &new_png],
            "pixels",
        ),
        size_case(
            &[
                "train",
                q,
                "--set",
                "data.source=\"npy\"",
                "--set",
                "data.train=\"huge.npy\"",
                "--out",
                &out("npy"),
            ],
            "huge.npy (shape [1000000, 1000000] of <f8, as its header says) needs about",
        ),
        size_case(
            &[
                "train",
                q,
                "--set",
                "data.source=\"idx\"",
                "--set",
                "data.train=\"huge.idx\"",
                "--out",
                &out("idx"),
            ],
            "huge.idx (dimensions [100000000, 1000, 1000], as its header says) needs about",
        ),
        size_case(
            &[
                "fit",
                "fit.toml",
                "--set",
                "model.kind=\"vae-1\"",
                "--set",
                "data.train=\"one-row.csv\"",
                "--set",
                "model.hidden=[100000000]",
                "--out",
                &out("vae"),
            ],
            "vae-1 with model.latents = 1 on 1 points of dimension 3 needs about",
        ),
        // Degenerate data.
        case(
            &["fit", "fit.toml", "--out", &out("constant")],
            "data column 2 is constant (every value 0.5): factor-analysis needs a positive variance in every column",
        ),
        case(
            &[
                "fit",
                "fit.toml",
                "--set",
                "data.train=\"one-row.csv\"",
                "--set",
                "model.kind=\"ppca\"",
                "--out",
                &out("one"),
            ],
            "the data has a single row: ppca",
        ),
        case(
            &[
                "fit",
                "fit.toml",
                "--set",
                "data.train=\"same-rows.csv\"",
                "--set",
                "model.kind=\"gmm-full\"",
                "--out",
                &out("same"),
            ],
            "all 3 rows of the data are the same: gmm-full",
        ),
        // sample -o: no overwriting without --force, PNG only.
        case(
            &["sample", &f.run, "-o", &f.png],
            "exists; sample does not overwrite a file unless --force",
        ),
        case(
            &["sample", &f.run, "-o", "draws.csv"],
            "sample writes PNG images only",
        ),
        // A checkpoint holding non-finite values.
        case(
            &["eval", &f.nan_run, "--k", "2"],
            "holds a non-finite value",
        ),
        case(
            &["sample", &f.nan_run, "-o", &new_png],
            "holds a non-finite value",
        ),
        case(
            &["train", "--resume", &f.nan_run],
            "holds a non-finite value",
        ),
        // Other inputs.
        case(&["eval", "no-such-run"], "no-such-run"),
        case(
            &["data", "fetch", "nosuchset"],
            "unknown data set \"nosuchset\": data fetch knows mnist, fashion-mnist, natural, all",
        ),
    ]
}

/// What is wrong with the output of `args`, if anything.
fn judge(args: &[String], expect: &str, out: &Output) -> Option<String> {
    let printed = text(out);
    let problems: Vec<&str> = [
        (out.status.code() != Some(1), "exit code is not 1"),
        (
            !printed.contains(expect),
            "the message lacks the expected text",
        ),
        (printed.contains("panicked"), "it panicked"),
        (
            printed.contains("RUST_BACKTRACE"),
            "it mentions RUST_BACKTRACE",
        ),
        (printed.contains("Error {"), "it prints Rust debug text"),
        (
            printed.matches("error:").count() != 1,
            "the error is not printed exactly once",
        ),
    ]
    .into_iter()
    .filter_map(|(bad, what)| bad.then_some(what))
    .collect();
    (!problems.is_empty()).then(|| {
        format!(
            "{args:?} ({:?}): {}; expected {expect:?}; printed:\n{printed}",
            out.status.code(),
            problems.join(", ")
        )
    })
}

#[test]
fn every_bad_input_exits_1_with_a_message_that_names_what_is_wrong() {
    let fixtures = fixtures();
    std::fs::create_dir_all(fixtures.dir.join("out")).unwrap();
    let cases = table(&fixtures);
    let mut failures = Vec::new();
    for case in &cases {
        let out = Command::new(BIN)
            .args(&case.args)
            .current_dir(&fixtures.dir)
            .output()
            .unwrap();
        failures.extend(judge(&case.args, &case.expect, &out));
    }
    // The size cases again with an address-space limit: an allocation the estimate missed
    // aborts there.
    for case in cases.iter().filter(|c| c.size) {
        let quoted: Vec<String> = case
            .args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let script = format!("ulimit -v {ULIMIT_KIB}; exec '{BIN}' {}", quoted.join(" "));
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(&fixtures.dir)
            .output()
            .unwrap();
        failures
            .extend(judge(&case.args, &case.expect, &out).map(|f| format!("under ulimit -v: {f}")));
    }
    // Nothing was written for a refused case (the existing PNG is untouched, no new one).
    assert_eq!(
        std::fs::read(&fixtures.png).unwrap(),
        b"not overwritten",
        "sample overwrote a file"
    );
    assert!(!fixtures.dir.join("new.png").exists());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    std::fs::remove_dir_all(&fixtures.dir).unwrap();
}
