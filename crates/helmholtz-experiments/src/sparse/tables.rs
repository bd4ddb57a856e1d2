//! The markdown tables of `helmholtz sparse`: one row per bars seed, one row per patches epoch.

use std::fmt::Write as _;

use super::{BarsOutcome, PatchesEpoch, RECOVERY_COSINE};

/// The bars table over seeds, with the count of seeds that recovered every bar.
#[derive(Clone, Debug)]
pub struct BarsTable {
    text: String,
    seeds: usize,
    recovered: usize,
}

impl Default for BarsTable {
    fn default() -> Self {
        BarsTable {
            text: String::from(
                "| seed | L^H per point | ground truth (q re-optimised) | learned − truth | bars recovered | min cosine | iterations | fit s |\n|---|---|---|---|---|---|---|---|\n",
            ),
            seeds: 0,
            recovered: 0,
        }
    }
}

impl BarsTable {
    /// Adds the row of one seed.
    pub fn push(&mut self, outcome: &BarsOutcome) {
        self.seeds += 1;
        self.recovered += usize::from(outcome.recovered);
        writeln!(
            self.text,
            "| {} | {:.6} | {:.6} | {:+.4} | {} / {} | {:.3} | {} | {:.1} |",
            outcome.seed,
            outcome.objective,
            outcome.ground_truth,
            outcome.objective - outcome.ground_truth,
            outcome.matched(),
            outcome.scores.len(),
            outcome.min_cosine(),
            outcome.iterations,
            outcome.fit_s
        )
        .expect("writing to a String");
    }

    /// The table with its closing line.
    pub fn finish(mut self) -> String {
        writeln!(
            self.text,
            "\nAll bars recovered (|cos| ≥ {RECOVERY_COSINE}) in {} of {} seeds.",
            self.recovered, self.seeds
        )
        .expect("writing to a String");
        self.text
    }
}

/// The patches table: one row per seed and epoch.
#[derive(Clone, Debug)]
pub struct PatchesTable {
    text: String,
}

impl Default for PatchesTable {
    fn default() -> Self {
        PatchesTable {
            text: String::from(
                "| seed | epoch | β | train objective | train ELBO | held-out ELBO | refined | posterior H | prior H | noise H | Gini | atom spread (px) | epoch s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
            ),
        }
    }
}

impl PatchesTable {
    /// Adds the rows of one seed's epochs.
    pub fn push(&mut self, seed: u64, epochs: &[PatchesEpoch]) {
        for e in epochs {
            writeln!(
                self.text,
                "| {seed} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.3} ± {:.3} | {} | {:.1} |",
                e.epoch,
                e.train.beta,
                e.train.objective,
                e.train.elbo,
                e.test.elbo,
                e.test_refined
                    .as_ref()
                    .map_or("–".to_string(), |r| format!("{:.2}", r.elbo)),
                e.test.entropies[0],
                e.test.entropies[1],
                e.test.entropies[2],
                e.gini.0,
                e.gini.1,
                e.atom_spread.map_or("–".to_string(), |s| format!(
                    "{:.2} ({:.2}–{:.2})",
                    s[1], s[0], s[2]
                )),
                e.epoch_s
            )
            .expect("writing to a String");
        }
    }

    /// The table.
    pub fn text(&self) -> &str {
        &self.text
    }
}
