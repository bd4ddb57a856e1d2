//! Sparse coding with the entropy-based ELBO ("Learning Sparse Codes with Entropy-Based ELBOs",
//! entropy.md §2–3): the bars experiment with its ground-truth reference, natural-image patches
//! trained by EM or with an amortized encoder, the user's own points (from a table or from
//! memory) trained by any of the three, the learned model applied to new points, and denoising
//! with a learned dictionary.
//!
//! A run directory holds the resolved config, the objective per iteration or epoch
//! (`metrics.jsonl`), the learned model (`model.safetensors`), `summary.json` and, for patches
//! runs, the checkpoints they resume from.

pub mod atoms;
pub mod bars;
pub mod config;
pub mod denoise;
mod files;
pub mod model;
pub mod patches;
pub mod points;
mod store;
pub mod tables;
mod watch;

pub use bars::{BarsOutcome, RECOVERY_COSINE, run_bars};
pub use config::{
    EncoderConfig, OLSHAUSEN_FIELD_BORDER, PosteriorFamily, SparseConfig, SparseDataConfig,
    SparseMethod, SparseModelConfig, SparseTrainConfig, WhitenKind,
};
pub use model::SparseRunModel;
pub use patches::{
    Patches, PatchesEpoch, load_patches, resume_patches, run_patches, run_patches_until,
};
pub use points::{PointsOutcome, run_points, run_points_with_array};
