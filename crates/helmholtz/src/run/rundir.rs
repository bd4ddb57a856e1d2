//! The run directory: one [`RunDir`] for `train`, `fit`, `sparse`, every `experiment`, and the
//! Python package.
//!
//! - [`RunDir::create`] refuses a directory that holds anything and leaves it unchanged; callers
//!   validate config and data *before* creating it, so an early error leaves nothing behind.
//! - A run holds a lock (`lock`: an advisory file lock, the holder's pid inside) while a process
//!   works on it; a second process is refused with a message naming the holder.
//! - Checkpoints `last` and `best` are written into a fresh folder, fsynced and swapped in by
//!   renames; a crash in the middle of a swap is recovered when the run is opened.
//! - Metrics are appended as JSON lines and read back by [`read_metrics`]; resume drops records
//!   written after the checkpoint it continues from, so no record is duplicated.
//! - Every resume is recorded in `history.jsonl` with its overrides.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::train::trainer::Slot;

/// Resolved config file name.
pub const CONFIG_FILE: &str = "config.toml";
/// Metrics file name.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Summary file name.
pub const SUMMARY_FILE: &str = "summary.json";
/// Lock file name.
pub const LOCK_FILE: &str = "lock";
/// Resume history file name.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The folder of a run that holds the data it was given as arrays.
pub const DATA_FOLDER: &str = "data";
/// The file a checkpoint writes last: a checkpoint folder without it is incomplete.
pub const CHECKPOINT_STATE: &str = "state.json";

/// A run directory held by this process (the lock is released when it is dropped).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: Option<File>,
}

impl RunDir {
    /// Creates a new run in `path`, which must not exist or be an empty directory; takes the lock.
    pub fn create(path: &Path) -> Result<Self> {
        refuse_used(path)?;
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock = take_lock(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// Undoes [`RunDir::create`] after a start that failed before the run began: empties the
    /// directory again (it was new or empty) and removes it when it did not exist before
    /// (`existed`). Best effort: what cannot be removed stays.
    pub fn abandon(self, existed: bool) {
        let path = self.path.clone();
        drop(self);
        if let Ok(entries) = std::fs::read_dir(&path) {
            for entry in entries.flatten() {
                let entry = entry.path();
                let _ = if entry.is_dir() {
                    std::fs::remove_dir_all(&entry)
                } else {
                    std::fs::remove_file(&entry)
                };
            }
        }
        if !existed {
            let _ = std::fs::remove_dir(&path);
        }
    }

    /// Opens an existing run to continue it: takes the lock and recovers interrupted
    /// checkpoint swaps.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.join(CONFIG_FILE).exists() {
            return Err(Error::Config(format!(
                "{} holds no run (no {CONFIG_FILE})",
                path.display()
            )));
        }
        let lock = take_lock(path)?;
        recover_checkpoints(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// Opens a run to read it (eval, sample, plot) without the lock. An interrupted checkpoint
    /// swap is recovered when no process holds the run.
    pub fn open_read(path: &Path) -> Result<Self> {
        if !path.join(CONFIG_FILE).exists() {
            return Err(Error::Config(format!(
                "{} holds no run (no {CONFIG_FILE})",
                path.display()
            )));
        }
        if let Ok(lock) = take_lock(path) {
            recover_checkpoints(path)?;
            drop(lock);
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file or folder of the run.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The folder of checkpoint `slot`.
    pub fn checkpoint(&self, slot: Slot) -> PathBuf {
        checkpoint_path(&self.path, slot)
    }

    /// Writes a file of the run atomically (temporary file, fsync, rename).
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(name), contents)
    }

    /// Stores `values` (n × d, one observation per row) in the run as the float64 NPY file
    /// `data/NAME.npy` and returns that path relative to the run, as a config inside the run
    /// names it: the data of a run made from arrays travel with it (Python estimators and fits).
    pub fn store_array(&self, name: &str, values: faer::MatRef<'_, f64>) -> Result<PathBuf> {
        let folder = self.path.join(DATA_FOLDER);
        std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
        let file = format!("{name}.npy");
        write_atomic(&folder.join(&file), &crate::data::npy::npy_bytes(values))?;
        Ok(Path::new(DATA_FOLDER).join(file))
    }

    /// Replaces checkpoint `slot` with the files `write` puts into a fresh folder: fsynced, then
    /// swapped in by renames (`.incoming` → slot, the old one kept as `.previous` until done).
    pub fn write_checkpoint(
        &self,
        slot: Slot,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let root = self.path.join("checkpoints");
        let (incoming, target, previous) = swap_paths(&self.path, slot);
        for dir in [&incoming, &previous] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir.as_path(), e))?;
            }
        }
        std::fs::create_dir_all(&incoming).map_err(|e| Error::io(&incoming, e))?;
        write(&incoming)?;
        if !incoming.join(CHECKPOINT_STATE).exists() {
            return Err(Error::Checkpoint(format!(
                "a checkpoint must write {CHECKPOINT_STATE} (in {})",
                incoming.display()
            )));
        }
        sync_dir_files(&incoming)?;
        if target.exists() {
            std::fs::rename(&target, &previous).map_err(|e| Error::io(&target, e))?;
        }
        std::fs::rename(&incoming, &target).map_err(|e| Error::io(&incoming, e))?;
        sync_dir(&root)?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(|e| Error::io(&previous, e))?;
        }
        Ok(())
    }

    /// Appends one record to `metrics.jsonl` (flushed before returning).
    pub fn log(&self, record: &serde_json::Value) -> Result<()> {
        append_line(&self.path.join(METRICS_FILE), &record.to_string())
    }

    /// Appends one record to `metrics.jsonl` as `record` serialises (fields in their declared
    /// order).
    pub fn log_serialized<T: serde::Serialize>(&self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| Error::Checkpoint(e.to_string()))?;
        append_line(&self.path.join(METRICS_FILE), &line)
    }

    /// Keeps only the metrics records whose `step` is at most `step` (records without a step
    /// are kept): what a resume from a checkpoint at `step` has not yet written again.
    pub fn truncate_metrics_after(&self, step: u64) -> Result<()> {
        self.truncate_metrics_by("step", step)
    }

    /// Keeps only the metrics records whose `epoch` is at most `epoch` (for runs that log one
    /// record per epoch without a step).
    pub fn truncate_metrics_after_epoch(&self, epoch: usize) -> Result<()> {
        self.truncate_metrics_by("epoch", epoch as u64)
    }

    fn truncate_metrics_by(&self, key: &str, limit: u64) -> Result<()> {
        let path = self.path.join(METRICS_FILE);
        if !path.exists() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get(key).and_then(|s| s.as_u64()))
                    .is_none_or(|s| s <= limit)
            })
            .collect();
        if kept.len() == text.lines().count() {
            return Ok(());
        }
        let mut out = kept.join("\n");
        out.push('\n');
        write_atomic(&path, out.as_bytes())
    }

    /// Replaces the run's `config.toml` with `text` (a resolved config, its paths absolute),
    /// keeping relative the data paths that the current file gives relative to the run (the
    /// arrays a run stores in itself, e.g. `data/train.npy`) wherever `text` names the same
    /// files: the directory stays movable after a resume rewrites its config.
    pub fn rewrite_config(&self, text: &str) -> Result<()> {
        let mut text = text.to_string();
        let old = std::fs::read_to_string(self.join(CONFIG_FILE)).unwrap_or_default();
        let table: toml::Table = toml::from_str(&old).unwrap_or_default();
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        for key in crate::run::config::PATH_KEYS {
            let Some((section, name)) = key.split_once('.') else {
                continue;
            };
            let Some(relative) = table
                .get(section)
                .and_then(|s| s.get(name))
                .and_then(toml::Value::as_str)
            else {
                continue;
            };
            if relative.is_empty() || Path::new(relative).is_absolute() {
                continue;
            }
            if let Ok(absolute) = std::path::absolute(self.path.join(relative)) {
                text = text.replace(&quoted(&absolute.to_string_lossy()), &quoted(relative));
            }
        }
        self.write_file(CONFIG_FILE, text.as_bytes())
    }

    /// Records a resume in `history.jsonl`: the time, the version, the overrides and what they
    /// changed.
    pub fn record_resume(&self, overrides: &[String], changes: &[String]) -> Result<()> {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let record = serde_json::json!({
            "event": "resume",
            "unix_s": seconds,
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "overrides": overrides,
            "changes": changes,
        });
        append_line(&self.path.join(HISTORY_FILE), &record.to_string())
    }
}

/// Refuses `path` when it exists and holds anything (an output directory of several runs, or a
/// run directory before it is created): nothing in it is touched.
pub fn refuse_used(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| Error::io(path, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let what = if path.join(CONFIG_FILE).exists() {
        "already holds a run; continue it with --resume, or choose another directory with --out"
    } else {
        "is not empty; choose a new or empty directory with --out"
    };
    Err(Error::Config(format!("{} {what}", path.display())))
}

/// `path` relative to the run directory `dir` when it lies inside it (`data/train.npy`), else
/// `path` as it is. A run's config names the data it holds this way, so that the run can be
/// moved or copied and still finds them: a relative path in a config resolves against the
/// config file's folder, which is the run.
pub fn relative_to_run(path: &Path, dir: &Path) -> PathBuf {
    match (std::path::absolute(path), std::path::absolute(dir)) {
        (Ok(path_abs), Ok(dir_abs)) => match path_abs.strip_prefix(&dir_abs) {
            Ok(inside) if !inside.as_os_str().is_empty() => inside.to_path_buf(),
            _ => path.to_path_buf(),
        },
        _ => path.to_path_buf(),
    }
}

/// The folder of checkpoint `slot` of the run in `run_dir`.
pub fn checkpoint_path(run_dir: &Path, slot: Slot) -> PathBuf {
    run_dir.join("checkpoints").join(slot.name())
}

/// (incoming, target, previous) folders of a checkpoint swap; `last` keeps the names
/// `.incoming` / `.previous` that runs made before `best` existed.
fn swap_paths(run_dir: &Path, slot: Slot) -> (PathBuf, PathBuf, PathBuf) {
    let root = run_dir.join("checkpoints");
    let suffix = match slot {
        Slot::Last => String::new(),
        Slot::Best => "-best".into(),
    };
    (
        root.join(format!(".incoming{suffix}")),
        root.join(slot.name()),
        root.join(format!(".previous{suffix}")),
    )
}

/// Repairs a checkpoint swap that a crash interrupted: with the slot missing, a complete
/// incoming folder (renames had begun, so it was fully written) is promoted, else the previous
/// one is put back; with the slot present, leftovers are removed.
pub fn recover_checkpoints(run_dir: &Path) -> Result<()> {
    for slot in [Slot::Last, Slot::Best] {
        let (incoming, target, previous) = swap_paths(run_dir, slot);
        let complete = |dir: &Path| dir.join(CHECKPOINT_STATE).exists();
        if !target.exists() {
            if incoming.exists() && complete(&incoming) {
                std::fs::rename(&incoming, &target).map_err(|e| Error::io(&incoming, e))?;
            } else if previous.exists() {
                std::fs::rename(&previous, &target).map_err(|e| Error::io(&previous, e))?;
            }
        }
        for dir in [&incoming, &previous] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir.as_path(), e))?;
            }
        }
    }
    Ok(())
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // The holder writes its pid just after taking the lock: give it a moment.
            let mut holder = String::new();
            for _ in 0..50 {
                holder.clear();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut holder);
                if !holder.trim().is_empty() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("process {holder}")
            };
            return Err(Error::Config(format!(
                "{} is in use by {who}; wait for it to finish or stop it first",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.rewind().map_err(|e| Error::io(&path, e))?;
    write!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
    file.flush().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(file, "{line}").map_err(|e| Error::io(path, e))
}

/// Writes `path` through a temporary file beside it, fsynced and renamed over it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let partial = path.with_extension("partial");
    {
        let mut file = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        file.write_all(contents)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&partial, e))?;
    }
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
}

fn sync_dir_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directories can be fsynced on Unix; elsewhere opening them fails, and renames are what
    // the platform makes of them.
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

/// Reads `metrics.jsonl`: one JSON object per line, blank lines skipped, in file order; a line
/// that is not a JSON object is an error naming the file and its 1-based number.
pub fn read_metrics(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let record: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Error::format(path, format!("line {}: {e}", i + 1)))?;
            if !record.is_object() {
                return Err(Error::format(
                    path,
                    format!("line {} is not a JSON object", i + 1),
                ));
            }
            Ok(record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hh-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn checkpoint_with(value: &str) -> impl FnOnce(&Path) -> Result<()> + '_ {
        move |dir: &Path| {
            std::fs::write(dir.join("params.bin"), value).unwrap();
            std::fs::write(dir.join(CHECKPOINT_STATE), value).unwrap();
            Ok(())
        }
    }

    fn read_state(dir: &Path, slot: Slot) -> String {
        std::fs::read_to_string(checkpoint_path(dir, slot).join(CHECKPOINT_STATE)).unwrap()
    }

    /// An array stored in a run reads back exactly from the relative path returned, and a path
    /// inside the run is named relative to it; one outside keeps its form.
    #[test]
    fn stored_arrays_read_back_through_their_relative_path() {
        let dir = scratch("arrays");
        let run = RunDir::create(&dir).unwrap();
        let values = faer::Mat::from_fn(4, 2, |i, j| 0.1 * i as f64 - 1.0 / (j + 3) as f64);
        let relative = run.store_array("train", values.as_ref()).unwrap();
        assert_eq!(relative, Path::new("data").join("train.npy"));
        let table = crate::data::table::read_table(
            &dir.join(&relative),
            &crate::data::table::TableOptions::default(),
        )
        .unwrap();
        assert_eq!(table.values, values);
        assert_eq!(relative_to_run(&dir.join(&relative), &dir), relative);
        let outside = Path::new("/elsewhere/x.csv");
        assert_eq!(relative_to_run(outside, &dir), outside);
        assert_eq!(relative_to_run(&dir, &dir), dir);
        drop(run);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_new_run_refuses_a_directory_that_holds_anything_and_leaves_it_unchanged() {
        let dir = scratch("refuse");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = RunDir::create(&dir).unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);
        std::fs::remove_dir_all(&dir).unwrap();
        let run = RunDir::create(&dir).unwrap();
        assert!(run.join(LOCK_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_holder_is_refused_with_the_holders_pid() {
        let dir = scratch("lock");
        let run = RunDir::create(&dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "x").unwrap();
        let err = RunDir::open(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&std::process::id().to_string()) && err.contains("in use"),
            "{err}"
        );
        assert!(RunDir::open_read(&dir).is_ok(), "readers need no lock");
        drop(run);
        assert!(RunDir::open(&dir).is_ok(), "released on drop");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checkpoints_replace_each_other_and_crashed_swaps_are_recovered() {
        let dir = scratch("swap");
        let run = RunDir::create(&dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "x").unwrap();
        run.write_checkpoint(Slot::Last, checkpoint_with("1"))
            .unwrap();
        run.write_checkpoint(Slot::Last, checkpoint_with("2"))
            .unwrap();
        run.write_checkpoint(Slot::Best, checkpoint_with("b"))
            .unwrap();
        assert_eq!(read_state(&dir, Slot::Last), "2");
        drop(run);
        let (incoming, last, previous) = swap_paths(&dir, Slot::Last);

        // A crash between the two renames: last moved away, the complete incoming not yet in.
        std::fs::rename(&last, &previous).unwrap();
        std::fs::create_dir_all(&incoming).unwrap();
        checkpoint_with("3")(&incoming).unwrap();
        RunDir::open(&dir).unwrap();
        assert_eq!(read_state(&dir, Slot::Last), "3");
        assert!(!incoming.exists() && !previous.exists());

        // A crash while writing (incoming incomplete) after the first rename: the previous one
        // comes back.
        std::fs::rename(&last, &previous).unwrap();
        std::fs::create_dir_all(&incoming).unwrap();
        std::fs::write(incoming.join("params.bin"), "half").unwrap();
        RunDir::open_read(&dir).unwrap();
        assert_eq!(read_state(&dir, Slot::Last), "3");
        assert_eq!(read_state(&dir, Slot::Best), "b");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn metrics_after_the_checkpoint_are_dropped_on_resume() {
        let dir = scratch("metrics");
        let run = RunDir::create(&dir).unwrap();
        for step in [10, 20, 30] {
            run.log(&serde_json::json!({ "step": step, "bound": -1.0 }))
                .unwrap();
        }
        run.log(&serde_json::json!({ "note": "no step" })).unwrap();
        run.truncate_metrics_after(20).unwrap();
        let records = read_metrics(&dir.join(METRICS_FILE)).unwrap();
        let steps: Vec<_> = records.iter().map(|r| r["step"].as_u64()).collect();
        assert_eq!(steps, vec![Some(10), Some(20), None]);
        std::fs::write(dir.join(METRICS_FILE), "{}\nnot json\n").unwrap();
        let err = read_metrics(&dir.join(METRICS_FILE))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
