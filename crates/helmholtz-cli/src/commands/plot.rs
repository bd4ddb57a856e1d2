//! `helmholtz plot RUN…`: learning curves of several runs on one chart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{out, plots};

/// Draws `metric` of the training records of `runs` into `output`.
pub fn run(runs: &[PathBuf], metric: &str, output: &Path) -> Result<()> {
    let mut series = Vec::new();
    for dir in runs {
        let records = helmholtz::run::read_metrics(&dir.join(helmholtz::run::METRICS_FILE))
            .with_context(|| format!("reading the metrics of {}", dir.display()))?;
        let points = plots::metric_series(&records, "train", metric, "epoch");
        if points.is_empty() {
            bail!(
                "{} has no `{metric}` values in its training records",
                dir.display()
            );
        }
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        series.push(plots::Series { label, points });
    }
    plots::line_chart(&series, metric, "epoch", metric, output)?;
    out!("wrote {}", output.display());
    Ok(())
}
