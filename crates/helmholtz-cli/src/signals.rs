//! SIGINT and SIGTERM: the first raises the stop flag (the trainer finishes the batch, writes a
//! checkpoint and the command exits with 128 + the signal: 130 or 143); a second one exits at
//! once and says what the last checkpoint on disk holds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The stop flag raised by a signal, and which signal raised it.
pub struct Stop {
    /// Raised by the first SIGINT or SIGTERM.
    pub flag: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
    run_dir: Arc<Mutex<PathBuf>>,
}

impl Stop {
    /// Installs the handlers; `run_dir` is the run whose checkpoint a second signal reports.
    pub fn install(run_dir: PathBuf) -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicI32::new(0));
        let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
        let (thread_flag, thread_signal) = (flag.clone(), signal.clone());
        let run_dir = Arc::new(Mutex::new(run_dir));
        let thread_dir = run_dir.clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT {
                    "interrupt"
                } else {
                    "terminate"
                };
                if thread_flag.swap(true, Ordering::SeqCst) {
                    crate::err!(
                        "second {name}: exiting now; {}",
                        last_checkpoint(&thread_dir.lock().map(|d| d.clone()).unwrap_or_default())
                    );
                    std::process::exit(128 + sig);
                }
                thread_signal.store(sig, Ordering::SeqCst);
                crate::err!(
                    "{name}: finishing the batch and writing a checkpoint (again to quit at once)"
                );
            }
        });
        Ok(Stop {
            flag,
            signal,
            run_dir,
        })
    }

    /// The run a second signal reports on from now on.
    pub fn watch(&self, run_dir: PathBuf) {
        if let Ok(mut dir) = self.run_dir.lock() {
            *dir = run_dir;
        }
    }

    /// The exit code of a run stopped by a signal: 128 + its number (130 for SIGINT, 143 for
    /// SIGTERM).
    pub fn exit_code(&self) -> i32 {
        match self.signal.load(Ordering::SeqCst) {
            0 => 130,
            sig => 128 + sig,
        }
    }
}

/// What the run's `last` checkpoint holds, read from disk.
fn last_checkpoint(run_dir: &std::path::Path) -> String {
    let path = run_dir.join("checkpoints").join("last").join("state.json");
    let state = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    match state {
        Some(value) => {
            let s = &value["state"];
            format!(
                "the last checkpoint in {} holds epoch {} batch {} (step {}); later steps are lost",
                run_dir.display(),
                s["epoch"],
                s["batch"],
                s["step"]
            )
        }
        None => format!("{} holds no complete checkpoint", run_dir.display()),
    }
}
