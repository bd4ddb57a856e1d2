//! The `helmholtz` binary end to end: a short training run leaves a complete run directory;
//! bad input gets a clear error and a non-zero exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn helmholtz(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

mod common;

use common::{repo_root, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

#[test]
fn train_eval_sample_and_plot_a_short_quickstart_run() {
    let dir = scratch("quickstart");
    let run = dir.join("run");
    let config = repo_root().join("configs/quickstart.toml");
    let out = helmholtz(
        &[
            "train",
            config.to_str().unwrap(),
            "--set",
            "train.epochs=2",
            "--set",
            "eval.every=1",
            "--set",
            "eval.test_at=[2]",
            "--set",
            "eval.final_k=50",
            "--set",
            "model.hidden=[16, 4]",
            "--out",
            run.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("epoch    2") && printed.contains("test NLL"),
        "{printed}"
    );
    for file in [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last/params.safetensors",
        "checkpoints/last/optimizer.safetensors",
        "checkpoints/last/state.json",
        "plots/learning_curve.png",
        "plots/samples.png",
        "plots/receptive_fields.png",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains("\"split\":\"train\""))
            .count(),
        2
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert!(summary["test_nll_nats"].as_f64().unwrap() > 0.0);

    let out = helmholtz(
        &[
            "eval",
            run.to_str().unwrap(),
            "--k",
            "20",
            "--split",
            "valid",
        ],
        &dir,
    );
    assert!(
        out.status.success() && text(&out).contains("valid log-likelihood"),
        "{}",
        text(&out)
    );
    let png = dir.join("s.png");
    let out = helmholtz(
        &[
            "sample",
            run.to_str().unwrap(),
            "--n",
            "9",
            "-o",
            png.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success() && png.is_file(), "{}", text(&out));
    // The file exists now: refused without --force, and left as it was; other extensions,
    // no samples and a grid too large to draw are refused before anything is written.
    let before = std::fs::read(&png).unwrap();
    let run_arg = run.to_str().unwrap();
    let refused = |args: &[&str], expect: &str| {
        let out = helmholtz(&[&["sample", run_arg][..], args].concat(), &dir);
        let message = text(&out);
        assert!(
            !out.status.success() && message.contains(expect) && !message.contains("panicked"),
            "{args:?}: {message}"
        );
    };
    refused(&["-o", png.to_str().unwrap()], "--force");
    assert_eq!(std::fs::read(&png).unwrap(), before);
    let csv = dir.join("s.csv");
    refused(&["-o", csv.to_str().unwrap()], "PNG images only");
    let other = dir.join("t.png");
    refused(&["--n", "0", "-o", other.to_str().unwrap()], "--n 0");
    refused(
        &["--n", "100000000000", "-o", other.to_str().unwrap()],
        "pixels",
    );
    assert!(!csv.exists() && !other.exists());
    let out = helmholtz(
        &[
            "sample",
            run_arg,
            "--n",
            "4",
            "--force",
            "-o",
            png.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(std::fs::read(&png).unwrap(), before, "--force overwrote it");
    let chart = dir.join("c.png");
    let out = helmholtz(
        &[
            "plot",
            run.to_str().unwrap(),
            run.to_str().unwrap(),
            "-o",
            chart.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success() && chart.is_file(), "{}", text(&out));
    // Resuming a finished run with more epochs continues it.
    let out = helmholtz(
        &[
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--set",
            "train.epochs=3",
            "--quiet",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"split\":\"train\""))
            .count(),
        3
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_config_key_is_rejected_by_name() {
    let dir = scratch("unknown");
    let config = repo_root().join("configs/quickstart.toml");
    let out = helmholtz(
        &[
            "train",
            config.to_str().unwrap(),
            "--set",
            "train.learning_rate=0.1",
        ],
        &dir,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown field `learning_rate`"),
        "{}",
        text(&out)
    );
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("[model]", "[model]\nlayers = 3"),
    )
    .unwrap();
    let out = helmholtz(&["train", bad.to_str().unwrap()], &dir);
    assert!(
        !out.status.success() && text(&out).contains("layers"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_with_a_wrong_magic_number_or_wrong_dimensions_are_rejected_clearly() {
    let dir = scratch("badfiles");
    let config = |train: &Path| {
        format!(
            "name = \"x\"\n[data]\nsource = \"idx\"\ntrain = \"{}\"\n[model]\nhidden = [4]\n[train]\nalgorithm = \"rws\"\nbatch_size = 2\nepochs = 1\n[optimizer]\nlr = 0.01\nrule = {{ kind = \"adam\" }}\n",
            train.display()
        )
    };
    // Wrong magic number: a 3-dimensional unsigned-byte IDX has magic 0x00000803.
    let wrong_magic = dir.join("magic.idx");
    let mut bytes = vec![0u8, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend([0u8; 4]);
    std::fs::write(&wrong_magic, &bytes).unwrap();
    std::fs::write(dir.join("magic.toml"), config(&wrong_magic)).unwrap();
    let out = helmholtz(&["train", "magic.toml", "--quiet"], &dir);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("magic.idx") && text(&out).to_lowercase().contains("magic"),
        "{}",
        text(&out)
    );
    // Header says 1×2×2 but 3 pixel bytes follow.
    let wrong_dims = dir.join("dims.idx");
    let mut bytes = vec![0u8, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend([0u8; 3]);
    std::fs::write(&wrong_dims, &bytes).unwrap();
    std::fs::write(dir.join("dims.toml"), config(&wrong_dims)).unwrap();
    let out = helmholtz(&["train", "dims.toml", "--quiet"], &dir);
    assert!(!out.status.success());
    assert!(text(&out).contains("dims.idx"), "{}", text(&out));
    // A run that does not exist.
    let out = helmholtz(&["eval", "no-such-run"], &dir);
    assert!(
        !out.status.success() && text(&out).contains("no-such-run"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bihm_run_is_evaluated_as_the_normalised_model() {
    let dir = scratch("bihm");
    let run = dir.join("run");
    let config = repo_root().join("configs/quickstart.toml");
    let out = helmholtz(
        &[
            "train",
            config.to_str().unwrap(),
            "--set",
            "train.algorithm=\"bihm\"",
            "--set",
            "train.epochs=2",
            "--set",
            "model.hidden=[16, 4]",
            "--set",
            "eval.final_k=10",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = helmholtz(&["eval", run.to_str().unwrap(), "--k", "50"], &dir);
    let printed = text(&out);
    assert!(
        out.status.success() && printed.contains("log Z²") && printed.contains("log p*"),
        "{printed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_nrws_vs_rws_experiment_writes_charts_and_a_table() {
    let dir = scratch("experiment");
    let out = dir.join("exp");
    let args = [
        "experiment",
        "nrws-vs-rws",
        "--data",
        "digits",
        "--epochs",
        "2",
        "--seeds",
        "1",
        "--only",
        "rws,nrws",
        "--refresh-every",
        "5",
        "--hidden",
        "30,20,10",
        "--batch",
        "25",
        "--out",
        out.to_str().unwrap(),
    ];
    let result = helmholtz(&args, &dir);
    assert!(result.status.success(), "{}", text(&result));
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        table.contains("| rws |") && table.contains("| nrws |") && !table.contains("bihm"),
        "{table}"
    );
    assert!(
        out.join("test_nll_vs_epoch.png").is_file() && out.join("test_nll_vs_time.png").is_file()
    );
    let config = std::fs::read_to_string(out.join("rws-seed0").join("config.toml")).unwrap();
    assert!(
        config.contains("hidden = [30, 20, 10]") && config.contains("batch_size = 25"),
        "{config}"
    );
    // Finished runs are reused: a second call trains nothing.
    let again = helmholtz(&args, &dir);
    assert!(
        again.status.success() && !text(&again).contains("training rws"),
        "{}",
        text(&again)
    );
    let bad = helmholtz(&["experiment", "nrws-vs-rws", "--data", "cifar"], &dir);
    assert!(!bad.status.success() && text(&bad).contains("cifar"));
    let bad = helmholtz(&["experiment", "nrws-vs-rws", "--hidden", "30,0"], &dir);
    assert!(!bad.status.success() && text(&bad).contains("--hidden"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_comparison_takes_an_optimizer_per_algorithm_and_protocol_configs() {
    let dir = scratch("experiment-arms");
    let out = dir.join("arms");
    let common = [
        "experiment",
        "nrws-vs-rws",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--seeds",
        "1",
    ];
    let mut args: Vec<&str> = common.to_vec();
    let out_text = out.to_str().unwrap().to_string();
    args.extend([
        "--only",
        "rws,bihm",
        "--optimizer",
        "sgd,bihm=adam",
        "--lr",
        "0.02,bihm=0.001",
        "--hidden",
        "20,10",
        "--out",
        &out_text,
    ]);
    let result = helmholtz(&args, &dir);
    assert!(result.status.success(), "{}", text(&result));
    let config = |run: &str| std::fs::read_to_string(out.join(run).join("config.toml")).unwrap();
    let (bihm, rws) = (config("bihm-seed0"), config("rws-seed0"));
    assert!(
        bihm.contains("lr = 0.001") && bihm.contains("kind = \"adam\""),
        "{bihm}"
    );
    assert!(
        rws.contains("lr = 0.02") && rws.contains("kind = \"sgd\""),
        "{rws}"
    );
    // BiHM's test estimates carry log p* and every estimate its standard error.
    let metrics = std::fs::read_to_string(out.join("bihm-seed0").join("metrics.jsonl")).unwrap();
    assert!(
        metrics.contains("nll_star_nats")
            && metrics.contains("log_z2")
            && metrics.contains("nll_se"),
        "{metrics}"
    );
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        table.contains("| bihm |") && table.contains("reach"),
        "{table}"
    );

    // A protocol config is one arm, named by its name; --data and --set change every protocol.
    let protocol = dir.join("mine.toml");
    std::fs::write(
        &protocol,
        "name = \"mine\"\n[data]\nsource = \"mnist\"\n[model]\nhidden = [12]\n[train]\nalgorithm = \"rws\"\nbatch_size = 50\nepochs = 5\n[optimizer]\nlr = 0.001\nrule = { kind = \"nadam\" }\n[eval]\nevery = 0\nk = 20\nfinal_k = 30\n",
    )
    .unwrap();
    let protocol_out = dir.join("protocol");
    let mut comparison = vec![
        "experiment",
        "nrws-vs-rws",
        "--protocol",
        protocol.to_str().unwrap(),
        "--data",
        "digits",
        "--set",
        "train.epochs=2",
        "--seeds",
        "2",
        "--out",
        protocol_out.to_str().unwrap(),
    ];
    let result = helmholtz(&comparison, &dir);
    assert!(result.status.success(), "{}", text(&result));
    let table = std::fs::read_to_string(protocol_out.join("results.md")).unwrap();
    assert!(
        table.contains("| mine |") && table.contains("epoch 2") && table.contains("Final test NLL"),
        "{table}"
    );
    assert!(
        protocol_out
            .join("mine-seed1")
            .join("summary.json")
            .is_file()
    );
    // Side-by-side epoch times replace the runs' median epoch times on the time axis; the
    // finished runs are reused.
    let result = helmholtz(
        &[&comparison[..], &["--epoch-seconds", "mine=7.5"]].concat(),
        &dir,
    );
    assert!(result.status.success(), "{}", text(&result));
    let table = std::fs::read_to_string(protocol_out.join("results.md")).unwrap();
    assert!(
        table.contains(" 7.50 |") && table.contains("given (--epoch-seconds"),
        "{table}"
    );
    // A longer comparison with estimates after every 2nd epoch and the last continues the
    // finished runs and keeps the estimates they have.
    let result = helmholtz(
        &[&comparison[..], &["--epochs", "3", "--test-every", "2"]].concat(),
        &dir,
    );
    assert!(result.status.success(), "{}", text(&result));
    let table = std::fs::read_to_string(protocol_out.join("results.md")).unwrap();
    assert!(
        table.contains("| arm | epoch 1 | epoch 2 | epoch 3 | s per epoch |"),
        "{table}"
    );
    let zero = helmholtz(&[&comparison[..], &["--test-every", "0"]].concat(), &dir);
    assert!(
        !zero.status.success() && text(&zero).contains("at least 1"),
        "{}",
        text(&zero)
    );
    comparison.push("--epoch-seconds");

    let refused = |args: &[&str], needle: &str| {
        let bad = helmholtz(args, &dir);
        assert!(
            !bad.status.success() && text(&bad).contains(needle),
            "{args:?}: {}",
            text(&bad)
        );
    };
    refused(
        &["experiment", "nrws-vs-rws", "--optimizer", "rws=lbfgs"],
        "sgd, momentum, adam or nadam",
    );
    refused(
        &["experiment", "nrws-vs-rws", "--lr", "nrws=-1"],
        "positive learning rate",
    );
    refused(
        &["experiment", "nrws-vs-rws", "--lr", "wake=0.1"],
        "rws, nrws, nrws-diagonal, bihm or nbihm",
    );
    refused(
        &[
            "experiment",
            "nrws-vs-rws",
            "--protocol",
            protocol.to_str().unwrap(),
            "--only",
            "rws",
        ],
        "--protocol takes",
    );
    refused(
        &[&comparison[..], &["other=3"]].concat(),
        "no arm of this comparison (arms: mine)",
    );
    refused(&[&comparison[..], &["mine"]].concat(), "LABEL=SECONDS");
    refused(
        &[&comparison[..], &["mine=2,mine=3"]].concat(),
        "gives mine twice",
    );
    refused(
        &[&comparison[..], &["mine=-2"]].concat(),
        "positive number of seconds",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sparse_coding_on_small_bars_writes_runs_atoms_and_a_table() {
    let dir = scratch("sparse");
    let out = dir.join("bars");
    let config = repo_root().join("configs/bars-full.toml");
    let args = [
        "sparse",
        config.to_str().unwrap(),
        "--seeds",
        "2",
        "--set",
        "data.side=3",
        "--set",
        "data.n=150",
        "--set",
        "model.n_latents=6",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let result = helmholtz(&args, &dir);
    assert!(result.status.success(), "{}", text(&result));
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        table.contains("| 0 |") && table.contains("| 1 |"),
        "{table}"
    );
    for seed in ["seed-0", "seed-1"] {
        for file in [
            "atoms.png",
            "fields.png",
            "summary.json",
            "metrics.jsonl",
            "model.safetensors",
        ] {
            assert!(out.join(seed).join(file).is_file(), "{seed}/{file}");
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seed-0/summary.json")).unwrap())
            .unwrap();
    assert!(summary["objective"].as_f64().unwrap().is_finite());
    // Unknown keys and impossible values are refused by name.
    let bad = helmholtz(
        &[
            "sparse",
            config.to_str().unwrap(),
            "--set",
            "model.colour=1",
        ],
        &dir,
    );
    assert!(
        !bad.status.success() && text(&bad).contains("colour"),
        "{}",
        text(&bad)
    );
    let bad = helmholtz(
        &["sparse", config.to_str().unwrap(), "--set", "data.noise=-1"],
        &dir,
    );
    assert!(
        !bad.status.success() && text(&bad).contains("noise"),
        "{}",
        text(&bad)
    );
    let bad = helmholtz(
        &[
            "sparse",
            config.to_str().unwrap(),
            "--set",
            "train.posterior_scale=0",
        ],
        &dir,
    );
    assert!(
        !bad.status.success() && text(&bad).contains("train.posterior_scale"),
        "{}",
        text(&bad)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fit_and_eval_entropy_print_the_decomposition() {
    let dir = scratch("fit");
    let run = dir.join("ppca");
    let config = repo_root().join("configs/entropy-ppca.toml");
    let out = helmholtz(
        &[
            "fit",
            config.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let fitted = text(&out);
    assert!(
        fitted.contains("entropy sum") && fitted.contains("gap"),
        "{fitted}"
    );
    let elbo_line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("ELBO"))
            .map(str::to_string)
    };
    let out = helmholtz(&["eval", run.to_str().unwrap(), "--entropy"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(elbo_line(&text(&out)), elbo_line(&fitted));
    // A Helmholtz machine trained by RWS (K = 10): the terms, and why the identity does not apply.
    let hm = dir.join("hm");
    let quickstart = repo_root().join("configs/quickstart.toml");
    let out = helmholtz(
        &[
            "train",
            quickstart.to_str().unwrap(),
            "--set",
            "train.epochs=1",
            "--set",
            "model.hidden=[8, 4]",
            "--out",
            hm.to_str().unwrap(),
            "--quiet",
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = helmholtz(
        &[
            "eval",
            hm.to_str().unwrap(),
            "--entropy",
            "--split",
            "valid",
            "--samples",
            "20",
        ],
        &dir,
    );
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("E_q H[p(h_1 | h_2)]") && printed.contains("importance-weighted"),
        "{printed}"
    );
    let out = helmholtz(&["eval", dir.to_str().unwrap(), "--entropy"], &dir);
    assert!(!out.status.success());
    assert!(text(&out).contains("neither"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_fisher_rao_experiment_writes_flows_histograms_and_a_summary() {
    let dir = scratch("fisher-rao");
    let out = helmholtz(
        &[
            "experiment",
            "fisher-rao-elbo",
            "--points",
            "300",
            "--starts",
            "2",
            "--out",
            dir.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    for file in [
        "summary.md",
        "cylindrical-flows.png",
        "latent-class-flows.png",
        "cosines-target-0.png",
        "cosines-target-1.png",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| 0.105585 | 0.894218 |"), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sngd_negative_binomial_experiment_writes_a_table_and_plots() {
    let dir = scratch("sngd-nb");
    let out = helmholtz(
        &[
            "experiment",
            "sngd-nb",
            "--inits",
            "2",
            "--iterations",
            "10",
            "--n",
            "300",
            "--out",
            dir.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    for file in ["summary.md", "nll-by-iteration.png", "nll-by-time.png"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("| SNGD (Gamma surrogate) |"), "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sngd_skew_normal_experiments_write_tables_and_plots() {
    for (kind, args) in [
        (
            "sngd-skew-normal",
            &["--dim", "4", "--train", "200", "--test", "50"][..],
        ),
        (
            "sngd-skew-t",
            &["--dim", "4", "--train", "200", "--test", "50"][..],
        ),
        ("sngd-vi", &["--dim", "3", "--n", "20"][..]),
        (
            "sngd-vi",
            &["--dim", "3", "--n", "20", "--components", "2"][..],
        ),
        ("sngd-vi", &["--dim", "3", "--n", "20", "--skew-t"][..]),
        (
            "sngd-copula",
            &[
                "--dim", "3", "--train", "60", "--test", "20", "--batch", "20",
            ][..],
        ),
    ] {
        let dir = scratch(kind);
        let mut all = vec![
            "experiment",
            kind,
            "--iterations",
            "20",
            "--lr-theta",
            "0.1",
            "--lr-adam",
            "0.01",
            "--lr-lambda",
            "0.01",
            "--out",
            dir.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = helmholtz(&all, &dir);
        assert!(out.status.success(), "{}", text(&out));
        for file in [
            "summary.md",
            "objective-by-iteration.png",
            "objective-by-time.png",
            "traces.json",
        ] {
            assert!(dir.join(file).is_file(), "{kind}: {file} missing");
        }
        let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(
            summary.contains("| SNGD (MVN surrogate, λ by Adam), β = 0.1, λ lr 0.01 |")
                && summary.contains("| Adam (precision = WᵀW), lr 0.01 |"),
            "{summary}"
        );
        assert_eq!(
            summary.contains("| MCEF natural gradient, β = "),
            kind == "sngd-vi" && !args.contains(&"--components") && !args.contains(&"--skew-t"),
            "{summary}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let dir = scratch("sngd-vi-bad");
    let out = helmholtz(&["experiment", "sngd-vi", "--dim", "0"], &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("'--dim <DIM>': 0 is not accepted"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sngd_nb_mixture_experiment_writes_a_table_and_plots() {
    let dir = scratch("sngd-nb-mixture");
    let out = helmholtz(
        &[
            "experiment",
            "sngd-nb-mixture",
            "--k",
            "2",
            "--n",
            "200",
            "--inits",
            "2",
            "--iterations",
            "3",
            "--out",
            dir.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    for file in ["summary.md", "nll-by-iteration.png", "nll-by-time.png"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    for method in [
        "SNGD (Gamma surrogate)",
        "BFGS (ln r, logit s)",
        "GD (ln r, logit s)",
    ] {
        assert!(summary.contains(&format!("| {method} |")), "{summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
