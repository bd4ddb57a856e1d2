//! Run-directory semantics end to end: signals checkpoint and exit 130 / 143, a closed or full
//! stdout loses nothing, every command refuses a directory that holds anything.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_helmholtz"))
}

mod common;

use common::{repo_root, text};

fn scratch(name: &str) -> PathBuf {
    common::scratch("rundir", name)
}

/// A small quickstart: 16-4 machine, no validation, `epochs` epochs.
fn small_train(run: &Path, epochs: usize) -> Command {
    let mut command = binary();
    command.current_dir(repo_root()).args([
        "train",
        "configs/quickstart.toml",
        "--set",
        "model.hidden=[16, 4]",
        "--set",
        &format!("train.epochs={epochs}"),
        "--set",
        "eval.every=0",
        "--set",
        "eval.test_at=[]",
        "--set",
        "eval.final_k=20",
        "--set",
        "checkpoint.every=1000",
        "--out",
        run.to_str().unwrap(),
    ]);
    command
}

fn wait_for_metrics(run: &Path, child: &mut Child) {
    let started = Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 1
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before the signal"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no epoch in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends, also when an assertion fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn checkpoint_step(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("checkpoints/last/state.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["state"]["step"].as_u64().unwrap()
}

#[test]
fn sigint_and_sigterm_checkpoint_the_run_and_exit_130_and_143() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let dir = scratch(&format!("signal-{signal}"));
        let run = dir.join("run");
        let mut child = small_train(&run, 10_000)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_metrics(&run, &mut child);
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{}", text(&output));
        // The checkpoint holds the steps trained before the signal (more than the first
        // epoch's, since checkpoint.every is 1000 and only the signal wrote it).
        assert!(checkpoint_step(&run) > 0);
        let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
        assert!(summary.contains("Interrupted"), "{summary}");
        // It resumes.
        let resumed = binary()
            .current_dir(repo_root())
            .args([
                "train",
                "--resume",
                run.to_str().unwrap(),
                "--set",
                "train.epochs=1",
                "--quiet",
            ])
            .output()
            .unwrap();
        assert!(resumed.status.success(), "{}", text(&resumed));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_closed_or_full_stdout_neither_panics_nor_loses_the_run() {
    let dir = scratch("stdout");
    // `helmholtz train … | head -1`
    let run = dir.join("head");
    let mut child = small_train(&run, 3)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("training"), "{first}");
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("Completed") && summary.contains("test_nll_nats"));

    // `helmholtz train … > /dev/full`
    let run = dir.join("full");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = small_train(&run, 2).stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(run.join("summary.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_command_refuses_a_directory_that_holds_anything_and_leaves_it_unchanged() {
    let dir = scratch("refuse");
    let taken = dir.join("taken");
    std::fs::create_dir_all(taken.join("sub")).unwrap();
    std::fs::write(taken.join("notes.txt"), "my notes").unwrap();
    std::fs::write(taken.join("sub/data.csv"), "1,2\n").unwrap();
    let before = snapshot(&taken);
    let out = taken.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["train", "configs/quickstart.toml", "--out", out],
        vec!["fit", "configs/entropy-ppca.toml", "--out", out],
        vec!["sparse", "configs/bars-full.toml", "--out", out],
        vec!["experiment", "fisher-rao-elbo", "--out", out],
        vec!["experiment", "sngd-nb", "--out", out],
    ];
    for args in commands {
        let output = binary()
            .current_dir(repo_root())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            !output.status.success(),
            "{args:?} accepted a used directory"
        );
        let message = text(&output);
        assert!(
            message.contains("not empty") && message.contains("taken"),
            "{args:?}: {message}"
        );
        assert_eq!(snapshot(&taken), before, "{args:?} changed the directory");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `helmholtz train --resume RUN ARGS…`, which must succeed.
fn resume(run: &Path, args: &[&str]) -> Output {
    let output = binary()
        .args(["train", "--resume", run.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    output
}

/// An early-stopped run resumed with nothing to do says early stopping ended it, names the key
/// that continues it and keeps its summary; raising the patience continues it.
#[test]
fn resuming_an_early_stopped_run_names_the_patience() {
    let dir = scratch("early");
    let run = dir.join("run");
    // The parameters never change (lr far below f32 resolution), so the validation estimate
    // never improves: patience 1 stops the run after epoch 2.
    let output = small_train(&run, 5)
        .args(["--set", "eval.every=1", "--set", "eval.patience=1"])
        .args(["--set", "optimizer.lr=1e-20"])
        .args(["--set", "optimizer.rule={ kind = \"sgd\" }"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary.contains("EarlyStopped"), "{summary}");
    let resumed = resume(&run, &[]);
    assert!(
        text(&resumed).contains("stopped early (eval.patience = 1) at epoch 2; nothing to do (raise eval.patience above 1"),
        "{}",
        text(&resumed)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("summary.json")).unwrap(),
        summary
    );
    resume(&run, &["--set", "eval.patience=3", "--quiet"]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["outcome"], "EarlyStopped");
    assert_eq!(summary["epochs"], 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_a_finished_run_appends_nothing_and_a_held_run_refuses_a_second_process() {
    let dir = scratch("finished");
    let run = dir.join("run");
    let output = small_train(&run, 2).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let resumed = resume(&run, &[]);
    assert!(
        text(&resumed).contains("nothing to do"),
        "{}",
        text(&resumed)
    );
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics
    );
    assert_eq!(
        std::fs::read_to_string(run.join("summary.json")).unwrap(),
        summary
    );

    // A long resume holds the lock; a second process on the run is refused with its pid.
    let holder = binary()
        .args([
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--set",
            "train.epochs=100000",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let holder = KillOnDrop(holder);
    let pid = holder.0.id().to_string();
    let started = Instant::now();
    while std::fs::read_to_string(run.join("lock")).unwrap_or_default() != pid {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the holder never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = binary()
        .args(["train", "--resume", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let message = text(&second);
    assert!(
        message.contains(&format!("in use by process {pid}")),
        "{message}"
    );
    drop(holder);
    std::fs::remove_dir_all(&dir).unwrap();
}
