//! Checkpoints of patches runs: the per-point model's parameters as raw f64 (EM), or the
//! encoder's parameters and Adam's moments, with the counters and the epoch's running sums.

use std::path::Path;

use helmholtz::models::encoder::AmortizedSparseCoding;
use helmholtz::models::sparse_coding::SparseCoding;
use helmholtz::run::{CHECKPOINT_STATE, RunDir, checkpoint};
use helmholtz::train::amortized::AmortizedStep;
use helmholtz::train::sparse_coding::{EpochStats, SparseEmStep};
use helmholtz::train::trainer::{CheckpointStore, Slot, TrainState};
use helmholtz::{Error, Result};
use serde::{Deserialize, Serialize};

/// The per-point model's parameters, as raw little-endian f64 (exact, for resume).
pub(super) const THETA_FILE: &str = "theta.f64";

fn write_f64s(path: &Path, values: &[f64]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

pub(super) fn read_f64s(path: &Path, expected: usize) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() != 8 * expected {
        return Err(Error::format(
            path,
            format!("{} bytes, expected {} f64 values", bytes.len(), expected),
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// What a patches checkpoint's state.json holds besides the tensors.
#[derive(Serialize, Deserialize)]
pub(super) struct PatchesState {
    version: String,
    pub(super) state: TrainState,
    #[serde(default)]
    pub(super) optimizer_step: u64,
    /// The epoch's sums over the batches so far.
    pub(super) stats: EpochStats,
}

/// Checkpoints of patches runs.
pub(super) struct PatchesStore<'a>(pub(super) &'a RunDir);

impl PatchesStore<'_> {
    fn save(
        &self,
        slot: Slot,
        state: &TrainState,
        stats: &EpochStats,
        optimizer_step: u64,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        self.0.write_checkpoint(slot, |tmp| {
            write(tmp)?;
            let stored = PatchesState {
                version: env!("CARGO_PKG_VERSION").to_string(),
                state: state.clone(),
                optimizer_step,
                stats: stats.clone(),
            };
            let text = serde_json::to_string_pretty(&stored)
                .map_err(|e| Error::Checkpoint(e.to_string()))?;
            let path = tmp.join(CHECKPOINT_STATE);
            std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
        })
    }
}

impl CheckpointStore<SparseCoding, SparseEmStep> for PatchesStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &SparseCoding,
        step: &SparseEmStep,
        state: &TrainState,
    ) -> Result<()> {
        PatchesStore::save(self, slot, state, &step.stats, 0, |tmp| {
            write_f64s(&tmp.join(THETA_FILE), &model.theta)
        })
    }
}

impl CheckpointStore<AmortizedSparseCoding, AmortizedStep> for PatchesStore<'_> {
    fn save(
        &mut self,
        slot: Slot,
        model: &AmortizedSparseCoding,
        step: &AmortizedStep,
        state: &TrainState,
    ) -> Result<()> {
        checkpoint::check_finite(&model.params)?;
        let optimizer = &step.optimizer;
        PatchesStore::save(self, slot, state, &step.stats, optimizer.step(), |tmp| {
            checkpoint::write_tensors(&tmp.join("params.safetensors"), &model.params)?;
            checkpoint::write_tensors(&tmp.join("optimizer.safetensors"), &optimizer.moments())
        })
    }
}
