//! What a fit checks before it starts: data that a model cannot be fitted to (a single row,
//! rows that are all the same, a constant column, fewer distinct rows than components) and
//! sizes that would not fit in memory. Each gets a message that says what is wrong and what
//! to do, instead of a failed Cholesky factorisation or NaN part-way through.

use std::collections::HashSet;

use faer::MatRef;

use super::{FitConfig, ModelKind, kind_name};
use crate::error::{Error, Result};
use crate::memory::{bytes_of, check_allocation};

/// Refuses data (D × N, one point per column; a "row" of the data file is a point, a "column"
/// one of its D values) that `config`'s model cannot be fitted to.
pub fn check_fit_data(x: MatRef<'_, f64>, config: &FitConfig) -> Result<()> {
    let kind = config.model.kind;
    let name = kind_name(kind);
    let (d, n) = (x.nrows(), x.ncols());
    let gaussian = matches!(
        kind,
        ModelKind::Ppca | ModelKind::FactorAnalysis | ModelKind::GmmDiagonal | ModelKind::GmmFull
    );
    let bad = |message: String| Err(Error::InvalidData(message));
    if n == 0 || d == 0 {
        return bad(format!("the data is empty ({n} rows of {d} columns)"));
    }
    if !gaussian {
        return Ok(());
    }
    if n == 1 {
        return bad(format!(
            "the data has a single row: {name} estimates variances from the data, which needs at least 2 rows that differ"
        ));
    }
    let constant: Vec<usize> = (0..d)
        .filter(|&r| (1..n).all(|c| x[(r, c)] == x[(r, 0)]))
        .collect();
    if constant.len() == d {
        return bad(format!(
            "all {n} rows of the data are the same: {name} needs rows that differ (a positive variance)"
        ));
    }
    let per_column = matches!(
        kind,
        ModelKind::FactorAnalysis | ModelKind::GmmDiagonal | ModelKind::GmmFull
    );
    if let (true, Some(&r)) = (per_column, constant.first()) {
        let more = match constant.len() {
            1 => String::new(),
            k => format!(" (and {} more constant columns)", k - 1),
        };
        return bad(format!(
            "data column {} is constant (every value {}){more}: {name} needs a positive variance in every column; drop the column, use model.kind = \"ppca\" (one noise variance shared by all columns), or for grey-level images set data.dequantize",
            r + 1,
            x[(r, 0)]
        ));
    }
    if matches!(kind, ModelKind::GmmDiagonal | ModelKind::GmmFull) {
        let components = config.model.latents;
        let distinct: HashSet<Vec<u64>> = (0..n)
            .map(|c| (0..d).map(|r| x[(r, c)].to_bits()).collect())
            .collect();
        if distinct.len() < components {
            return bad(format!(
                "the data has only {} distinct rows (of {n}), fewer than the {components} components of model.latents: each component of {name} starts at a different row; lower model.latents or remove duplicate rows",
                distinct.len()
            ));
        }
    }
    Ok(())
}

/// Refuses a fit whose model and working buffers for `n` points of dimension `d` would need
/// more memory than the machine has (an estimate, in f64: the data, the model's parameters and
/// the per-point quantities of one step).
pub fn check_fit_memory(config: &FitConfig, d: usize, n: usize) -> Result<()> {
    let (m, t) = (&config.model, &config.train);
    let h = m.latents;
    let sum = |parts: &[u128]| parts.iter().fold(0u128, |a, &b| a.saturating_add(b));
    let f64s = match m.kind {
        // Centred data, covariance and its eigenvectors, W, posterior means and covariance.
        ModelKind::Ppca | ModelKind::FactorAnalysis => sum(&[
            bytes_of(&[2, d, n], 1),
            bytes_of(&[3, d, d], 1),
            bytes_of(&[2, d, h], 1),
            bytes_of(&[h, n], 1),
            bytes_of(&[h, h], 1),
        ]),
        // Responsibilities, means and variances (covariances and their factors: full).
        ModelKind::GmmDiagonal | ModelKind::BernoulliMixture => sum(&[
            bytes_of(&[3, h, n], 1),
            bytes_of(&[3, h, d], 1),
            bytes_of(&[d, n], 1),
        ]),
        ModelKind::GmmFull => sum(&[
            bytes_of(&[3, h, n], 1),
            bytes_of(&[3, h, d, d], 1),
            bytes_of(&[2, d, n], 1),
        ]),
        // Every posterior over the 2^H configurations, for every point.
        ModelKind::SbnExact => sum(&[
            bytes_of(&[n, 1usize.checked_shl(h as u32).unwrap_or(usize::MAX)], 2),
            bytes_of(&[4, d, h + 1], 1),
        ]),
        // Encoder and decoder (widths mirrored), their gradients and Adam's moments, and the
        // activations of one batch.
        ModelKind::Vae1 | ModelKind::Vae2 | ModelKind::Vae3 => {
            let mut widths = vec![d];
            widths.extend(&m.hidden);
            widths.push(h.saturating_mul(2));
            let params = widths.windows(2).fold(0u128, |a, w| {
                a.saturating_add(bytes_of(&[w[0] + 1, w[1]], 2))
            });
            let width_sum = widths.iter().fold(0usize, |a, &w| a.saturating_add(w));
            sum(&[
                params.saturating_mul(5),
                bytes_of(&[8, t.batch_size, width_sum], 1),
            ])
        }
    };
    check_allocation(
        &format!(
            "{} with {} = {h} on {n} points of dimension {d}",
            kind_name(m.kind),
            if m.kind.mixture().is_some() {
                "model.latents (components)"
            } else {
                "model.latents"
            }
        ),
        f64s.saturating_mul(8),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::config::DataSource;
    use faer::Mat;

    fn config(kind: &str, latents: usize) -> FitConfig {
        FitConfig::parse(
            &format!(
                "name = \"t\"\n[data]\nsource = \"csv\"\ntrain = \"x.csv\"\n[model]\nkind = \"{kind}\"\nlatents = {latents}\n"
            ),
            &[],
            "t.toml".as_ref(),
        )
        .unwrap()
    }

    /// Points as rows, as in a data file.
    fn data(rows: &[&[f64]]) -> Mat<f64> {
        Mat::from_fn(rows[0].len(), rows.len(), |r, c| rows[c][r])
    }

    #[test]
    fn degenerate_data_is_named() {
        let message = |kind: &str, latents: usize, rows: &[&[f64]]| {
            check_fit_data(data(rows).as_ref(), &config(kind, latents))
                .unwrap_err()
                .to_string()
        };
        let err = message("factor-analysis", 1, &[&[1.0, 0.5, 2.0], &[3.0, 0.5, 1.0]]);
        assert!(
            err.contains("data column 2 is constant (every value 0.5)"),
            "{err}"
        );
        let err = message("ppca", 1, &[&[1.0, 2.0]]);
        assert!(err.contains("single row"), "{err}");
        let err = message("gmm-full", 1, &[&[1.0, 2.0], &[1.0, 2.0], &[1.0, 2.0]]);
        assert!(err.contains("all 3 rows of the data are the same"), "{err}");
        let err = message(
            "gmm-diagonal",
            3,
            &[&[1.0, 2.0], &[1.0, 3.0], &[1.0, 2.0], &[1.0, 4.0]],
        );
        assert!(err.contains("data column 1 is constant"), "{err}");
        let err = message(
            "gmm-diagonal",
            3,
            &[&[1.0, 2.0], &[0.0, 3.0], &[1.0, 2.0], &[0.0, 3.0]],
        );
        assert!(err.contains("only 2 distinct rows (of 4)"), "{err}");
        // PPCA shares one noise variance: a constant column is fine.
        check_fit_data(
            data(&[&[1.0, 0.5, 2.0], &[3.0, 0.5, 1.0]]).as_ref(),
            &config("ppca", 1),
        )
        .unwrap();
        assert_eq!(config("ppca", 1).data.source, DataSource::Csv);
    }

    #[test]
    fn huge_models_are_refused_before_allocating() {
        let err = check_fit_memory(&config("ppca", 1_000_000_000), 64, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ppca with model.latents = 1000000000") && err.contains("needs about"),
            "{err}"
        );
        check_fit_memory(&config("gmm-full", 3), 64, 1000).unwrap();
    }
}
