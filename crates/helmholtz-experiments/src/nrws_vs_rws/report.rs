//! What a comparison's runs show: each run's test-NLL curve against epochs and training time,
//! its final estimate, the arms' means and spreads over seeds, and the markdown tables of the
//! report (equal epochs, equal training time, final estimates).

use std::fmt::Write as _;
use std::path::Path;

use helmholtz::Result;
use helmholtz::math::mean_and_sd;
use helmholtz::run::{METRICS_FILE, read_metrics};

/// One point of a run's curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Epoch.
    pub epoch: f64,
    /// Training seconds at the end of the epoch: the epoch times the run's median epoch time.
    pub seconds: f64,
    /// Test NLL in nats of the arm's model: p for RWS and NRWS, p* = p̃*/Z² for BiHM runs.
    pub nll: f64,
    /// Its standard error over the test points (for p*, with log Z²'s error in quadrature).
    pub se: f64,
    /// The test NLL of p (the same as `nll` except for BiHM runs).
    pub nll_p: f64,
}

/// The test NLL of a run after each epoch.
pub type Curve = Vec<CurvePoint>;

/// The final estimate of a run (`eval.final_k`), when it has one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinalEstimate {
    /// Samples per point.
    pub k: usize,
    /// NLL of the arm's model (p* for BiHM).
    pub nll: f64,
    /// Its standard error.
    pub se: f64,
    /// NLL of p.
    pub nll_p: f64,
}

/// The runs of one arm.
#[derive(Clone, Debug)]
pub struct ArmRuns {
    /// The arm's label.
    pub label: String,
    /// One curve per seed.
    pub curves: Vec<Curve>,
    /// One final estimate per seed that has one.
    pub finals: Vec<FinalEstimate>,
    /// Seeds whose run diverged (their curves end there).
    pub diverged: Vec<u64>,
}

impl ArmRuns {
    /// The mean curve over seeds, at the epochs every seed has an estimate after (a seed that
    /// diverged ends the mean curve; seeds estimated at other cadences, `--test-every`, meet at
    /// their common epochs).
    pub fn mean_curve(&self) -> Curve {
        let Some(first) = self.curves.first() else {
            return Vec::new();
        };
        let n = self.curves.len() as f64;
        first
            .iter()
            .filter_map(|p0| {
                let at: Vec<&CurvePoint> = self
                    .curves
                    .iter()
                    .map(|c| c.iter().find(|p| p.epoch == p0.epoch))
                    .collect::<Option<_>>()?;
                let mean = |f: fn(&CurvePoint) -> f64| at.iter().map(|&p| f(p)).sum::<f64>() / n;
                Some(CurvePoint {
                    epoch: p0.epoch,
                    seconds: mean(|p| p.seconds),
                    nll: mean(|p| p.nll),
                    se: mean(|p| p.se),
                    nll_p: mean(|p| p.nll_p),
                })
            })
            .collect()
    }

    /// Puts every curve on the time axis of `seconds` per epoch (a side-by-side timing)
    /// instead of each run's median epoch time.
    pub fn time_epochs_by(&mut self, seconds: f64) {
        for point in self.curves.iter_mut().flatten() {
            point.seconds = point.epoch * seconds;
        }
    }

    /// Mean and standard deviation over seeds of the test NLL after `epoch` (None when a
    /// seed's curve does not reach it).
    pub fn nll_at(&self, epoch: usize) -> Option<(f64, f64)> {
        self.mean_sd_at(epoch, |p| p.nll)
    }

    /// Mean and standard deviation over seeds of the test NLL of p after `epoch` (the same as
    /// [`ArmRuns::nll_at`] except for BiHM arms, whose `nll_at` is p*'s).
    pub fn nll_p_at(&self, epoch: usize) -> Option<(f64, f64)> {
        self.mean_sd_at(epoch, |p| p.nll_p)
    }

    /// Whether the arm's model NLL is BiHM's p* rather than p (some point differs from p's).
    pub fn scores_p_star(&self) -> bool {
        self.curves.iter().flatten().any(|p| p.nll != p.nll_p)
    }

    fn mean_sd_at(&self, epoch: usize, value: fn(&CurvePoint) -> f64) -> Option<(f64, f64)> {
        let values: Option<Vec<f64>> = self
            .curves
            .iter()
            .map(|c| c.iter().find(|p| p.epoch == epoch as f64).map(value))
            .collect();
        values.filter(|v| !v.is_empty()).map(|v| mean_and_sd(&v))
    }

    /// Mean and standard deviation over seeds of the last test NLL.
    pub fn final_nll(&self) -> (f64, f64) {
        let finals: Vec<f64> = self
            .curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.nll))
            .collect();
        mean_and_sd(&finals)
    }

    /// Mean training seconds per epoch.
    pub fn seconds_per_epoch(&self) -> f64 {
        let per_epoch: Vec<f64> = self
            .curves
            .iter()
            .filter_map(|c| c.last().map(|p| p.seconds / p.epoch))
            .collect();
        per_epoch.iter().sum::<f64>() / per_epoch.len().max(1) as f64
    }

    /// The training seconds the mean curve needs to reach `nll` (linear between epochs; the
    /// first point's time if it is already there), or None if it never does.
    pub fn seconds_to_reach(&self, nll: f64) -> Option<f64> {
        let curve = self.mean_curve();
        let first = curve.first()?;
        if first.nll <= nll {
            return Some(first.seconds);
        }
        curve.windows(2).find_map(|w| {
            (w[1].nll <= nll).then(|| {
                let t = (w[0].nll - nll) / (w[0].nll - w[1].nll);
                w[0].seconds + t * (w[1].seconds - w[0].seconds)
            })
        })
    }
}

/// The per-epoch test NLL curve of a run in `dir` (the final estimate excluded). The training
/// time after epoch e is e times the run's median epoch time, so that epochs slowed by other
/// work on a shared machine do not shift the curve.
pub fn curve(dir: &Path) -> Result<Curve> {
    let records = read_metrics(&dir.join(METRICS_FILE))?;
    let train: Vec<&serde_json::Value> = records.iter().filter(|r| r["split"] == "train").collect();
    let mut epoch_s: Vec<f64> = train.iter().filter_map(|r| r["epoch_s"].as_f64()).collect();
    epoch_s.sort_by(f64::total_cmp);
    let median = match epoch_s.len() {
        0 => 0.0,
        n if n % 2 == 1 => epoch_s[n / 2],
        n => 0.5 * (epoch_s[n / 2 - 1] + epoch_s[n / 2]),
    };
    let time_at: std::collections::BTreeMap<u64, f64> = train
        .iter()
        .filter_map(|r| r["epoch"].as_u64())
        .map(|e| (e, e as f64 * median))
        .collect();
    Ok(records
        .iter()
        .filter(|r| r["split"] == "test" && r["final"] != true)
        .filter_map(|r| {
            let epoch = r["epoch"].as_u64()?;
            let nll_p = r["nll_nats"].as_f64()?;
            let (nll, se) = model_nll(r).unwrap_or((nll_p, 0.0));
            Some(CurvePoint {
                epoch: epoch as f64,
                seconds: *time_at.get(&epoch)?,
                nll,
                se,
                nll_p,
            })
        })
        .collect())
}

/// The NLL of the record's model and its error: p* for BiHM records, else p.
fn model_nll(record: &serde_json::Value) -> Option<(f64, f64)> {
    let se = |key: &str| record[key].as_f64().unwrap_or(f64::NAN);
    match record["nll_star_nats"].as_f64() {
        Some(star) => Some((star, se("nll_star_se"))),
        None => Some((record["nll_nats"].as_f64()?, se("nll_se"))),
    }
}

/// The final (`eval.final_k`) test estimate of a run in `dir`, if it has one.
pub fn final_estimate(dir: &Path) -> Result<Option<FinalEstimate>> {
    let records = read_metrics(&dir.join(METRICS_FILE))?;
    Ok(records
        .iter()
        .rev()
        .find(|r| r["split"] == "test" && r["final"] == true)
        .and_then(|r| {
            let (nll, se) = model_nll(r)?;
            Some(FinalEstimate {
                k: r["k"].as_u64()? as usize,
                nll,
                se,
                nll_p: r["nll_nats"].as_f64()?,
            })
        }))
}

/// The sentence that says where the seconds per epoch come from.
fn time_axis(runs: &[ArmRuns], timed: &[&str]) -> String {
    let (given, median): (Vec<&ArmRuns>, Vec<&ArmRuns>) =
        runs.iter().partition(|r| timed.contains(&r.label.as_str()));
    let names = |arms: &[&ArmRuns]| -> String {
        arms.iter()
            .map(|r| r.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (given.is_empty(), median.is_empty()) {
        (true, _) => "\nSeconds per epoch: each run's median epoch time.\n".into(),
        (false, true) => {
            "\nSeconds per epoch: given (--epoch-seconds, a side-by-side timing), for every arm.\n"
                .into()
        }
        (false, false) => format!(
            "\nSeconds per epoch: given (--epoch-seconds, a side-by-side timing) for {}; each run's median epoch time for {}.\n",
            names(&given),
            names(&median)
        ),
    }
}

/// Epochs shown in the equal-epochs table: those of 1, 2, 5, 10, 20, 30, 50, 100, 200, … that
/// some run has an estimate after (`tested`), up to the last, which is always shown.
fn shown_epochs(last: usize, tested: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut shown: Vec<usize> = [1, 2, 5, 10, 20, 30, 50, 100, 200, 500, 1000]
        .into_iter()
        .filter(|&e| e < last && tested(e))
        .collect();
    shown.push(last);
    shown
}

/// "mean ± sd" over `n` seeds; the mean alone for one seed, which has no spread to show.
fn mean_sd(mean: f64, sd: f64, n: usize) -> String {
    if n > 1 {
        format!("{mean:.2} ± {sd:.2}")
    } else {
        format!("{mean:.2}")
    }
}

/// The report's markdown tables for `runs` over `seeds` seeds, with per-epoch estimates of `k`
/// samples per point; the arms in `timed` have their time axis from given epoch times.
pub(super) fn tables(runs: &[ArmRuns], k: usize, seeds: u64, timed: &[&str]) -> String {
    let last = runs
        .iter()
        .flat_map(|r| r.curves.iter().filter_map(|c| c.last()))
        .map(|p| p.epoch as usize)
        .max()
        .unwrap_or(0);
    let epochs = shown_epochs(last, |e| {
        runs.iter()
            .flat_map(|r| &r.curves)
            .any(|c| c.iter().any(|p| p.epoch == e as f64))
    });
    let over = if seeds > 1 {
        format!("mean ± sd over {seeds} seeds")
    } else {
        "one seed".into()
    };
    // The header of a table with a column per shown epoch and the `extra` columns after them.
    let header = |table: &mut String, extra: &[&str]| {
        *table += "| arm |";
        for e in &epochs {
            write!(table, " epoch {e} |").expect("writing to a String");
        }
        for column in extra {
            write!(table, " {column} |").expect("writing to a String");
        }
        *table += "\n|---|";
        *table += &"---|".repeat(epochs.len() + extra.len());
        *table += "\n";
    };
    let mut table = format!(
        "Test NLL (nats, K = {k}; {over}; BiHM arms: p* = p̃*/Z²) after each epoch, and training seconds per epoch:\n\n"
    );
    header(&mut table, &["s per epoch"]);
    let cells = |table: &mut String, r: &ArmRuns, at: fn(&ArmRuns, usize) -> Option<(f64, f64)>| {
        write!(table, "| {} |", r.label).expect("writing to a String");
        for &e in &epochs {
            match at(r, e) {
                Some((mean, sd)) => write!(table, " {} |", mean_sd(mean, sd, r.curves.len())),
                None => write!(table, " – |"),
            }
            .expect("writing to a String");
        }
    };
    for r in runs {
        cells(&mut table, r, ArmRuns::nll_at);
        writeln!(table, " {:.2} |", r.seconds_per_epoch()).expect("writing to a String");
    }
    let bihm: Vec<&ArmRuns> = runs.iter().filter(|r| r.scores_p_star()).collect();
    if !bihm.is_empty() {
        table += "\nBiHM arms, test NLL of p (nats, the same estimates) after each epoch:\n\n";
        header(&mut table, &[]);
        for r in bihm {
            cells(&mut table, r, ArmRuns::nll_p_at);
            table += "\n";
        }
    }
    table += &time_axis(runs, timed);
    table += "\nTraining seconds each arm's mean curve needs to reach each arm's last mean value \
              (linear between epochs; – never):\n\n| arm |";
    for r in runs {
        write!(table, " {} ({:.2}) |", r.label, r.final_nll().0).expect("writing to a String");
    }
    table += "\n|---|";
    table += &"---|".repeat(runs.len());
    table += "\n";
    for r in runs {
        write!(table, "| {} |", r.label).expect("writing to a String");
        for target in runs {
            match r.seconds_to_reach(target.final_nll().0) {
                Some(s) => write!(table, " {s:.0} |"),
                None => write!(table, " – |"),
            }
            .expect("writing to a String");
        }
        table += "\n";
    }
    let with_finals: Vec<&ArmRuns> = runs.iter().filter(|r| !r.finals.is_empty()).collect();
    if !with_finals.is_empty() {
        table += "\nFinal test NLL (`eval.final_k`; mean ± sd over seeds, and the mean standard \
                  error over the test points):\n\n| arm | K | seeds | NLL | se | NLL of p |\n|---|---|---|---|---|---|\n";
        for r in with_finals {
            let nll: Vec<f64> = r.finals.iter().map(|f| f.nll).collect();
            let p: Vec<f64> = r.finals.iter().map(|f| f.nll_p).collect();
            let se = r.finals.iter().map(|f| f.se).sum::<f64>() / r.finals.len() as f64;
            let (mean, sd) = mean_and_sd(&nll);
            writeln!(
                table,
                "| {} | {} | {} | {} | {se:.2} | {:.2} |",
                r.label,
                r.finals[0].k,
                r.finals.len(),
                mean_sd(mean, sd, r.finals.len()),
                mean_and_sd(&p).0
            )
            .expect("writing to a String");
        }
    }
    let diverged: Vec<String> = runs
        .iter()
        .filter(|r| !r.diverged.is_empty())
        .map(|r| format!("{} (seeds {:?})", r.label, r.diverged))
        .collect();
    if !diverged.is_empty() {
        writeln!(table, "\nDiverged: {}.", diverged.join(", ")).expect("writing to a String");
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(epoch: f64, seconds: f64, nll: f64) -> CurvePoint {
        CurvePoint {
            epoch,
            seconds,
            nll,
            se: 0.1,
            nll_p: nll,
        }
    }

    fn arm(label: &str, curves: Vec<Curve>) -> ArmRuns {
        ArmRuns {
            label: label.into(),
            curves,
            finals: Vec::new(),
            diverged: Vec::new(),
        }
    }

    /// The time axis is the epoch times the median epoch time (a contended epoch moves nothing);
    /// BiHM records give p*'s NLL and error, with p's beside it; the final estimate is not a
    /// point of the curve but the run's final estimate.
    #[test]
    fn a_run_curve_uses_the_median_epoch_time_and_p_star_for_bihm() {
        let dir = std::env::temp_dir().join(format!("helmholtz-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [
            r#"{"split":"train","epoch":1,"epoch_s":10.0}"#,
            r#"{"split":"test","epoch":1,"k":100,"nll_nats":120.0,"nll_se":0.3,"nll_star_nats":118.0,"nll_star_se":0.4}"#,
            r#"{"split":"train","epoch":2,"epoch_s":31.0}"#,
            r#"{"split":"test","epoch":2,"k":100,"nll_nats":110.0,"nll_se":0.3,"nll_star_nats":108.5,"nll_star_se":0.4}"#,
            r#"{"split":"train","epoch":3,"epoch_s":12.0}"#,
            r#"{"split":"test","epoch":3,"k":100,"nll_nats":105.0,"nll_se":0.3}"#,
            r#"{"split":"test","epoch":3,"k":1000,"final":true,"nll_nats":104.0,"nll_se":0.25,"nll_star_nats":102.0,"nll_star_se":0.3}"#,
        ];
        std::fs::write(dir.join(METRICS_FILE), lines.join("\n")).unwrap();
        let c = curve(&dir).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.iter().map(|p| p.seconds).collect::<Vec<_>>(),
            [12.0, 24.0, 36.0]
        );
        assert_eq!((c[0].nll, c[0].se, c[0].nll_p), (118.0, 0.4, 120.0));
        assert_eq!((c[2].nll, c[2].se, c[2].nll_p), (105.0, 0.3, 105.0));
        let f = final_estimate(&dir).unwrap().unwrap();
        assert_eq!((f.k, f.nll, f.se, f.nll_p), (1000, 102.0, 0.3, 104.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seconds_to_reach_interpolates_the_mean_curve() {
        let runs = arm(
            "a",
            vec![
                vec![
                    point(1.0, 10.0, 120.0),
                    point(2.0, 20.0, 110.0),
                    point(3.0, 30.0, 100.0),
                ],
                vec![
                    point(1.0, 12.0, 124.0),
                    point(2.0, 22.0, 112.0),
                    point(3.0, 32.0, 104.0),
                ],
            ],
        );
        let mean = runs.mean_curve();
        assert_eq!(mean[1], point(2.0, 21.0, 111.0));
        // Halfway between 111 (21 s) and 102 (31 s).
        assert!((runs.seconds_to_reach(106.5).unwrap() - 26.0).abs() < 1e-12);
        // Already there after the first epoch, and never.
        assert_eq!(runs.seconds_to_reach(130.0), Some(11.0));
        assert_eq!(runs.seconds_to_reach(101.0), None);
        let (m, sd) = runs.nll_at(2).unwrap();
        assert_eq!(m, 111.0);
        assert!((sd - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(runs.nll_at(4), None);
        assert_eq!(runs.final_nll().0, 102.0);
        assert!((runs.seconds_per_epoch() - 31.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_tables_show_equal_epochs_equal_time_and_divergence() {
        let fast = arm(
            "fast",
            vec![vec![point(1.0, 5.0, 120.0), point(2.0, 10.0, 115.0)]],
        );
        let mut slow = arm(
            "slow",
            vec![vec![point(1.0, 20.0, 110.0), point(2.0, 40.0, 100.0)]],
        );
        slow.diverged.push(1);
        let text = tables(&[fast, slow], 100, 1, &[]);
        // One seed has no spread: the means alone.
        assert!(text.contains("K = 100; one seed;"), "{text}");
        assert!(text.contains("| fast | 120.00 | 115.00 | 5.00 |"), "{text}");
        // fast never reaches slow's 100; slow reaches fast's 115 after its first epoch.
        assert!(text.contains("| fast | 10 | – |"), "{text}");
        assert!(text.contains("| slow | 20 | 40 |"), "{text}");
        assert!(text.contains("Diverged: slow (seeds [1])."), "{text}");
        assert!(text.contains("each run's median epoch time.\n"), "{text}");
    }

    /// BiHM arms score p* in the main table and get a second table of p's estimates; RWS
    /// arms (p alone) and reports without BiHM arms have none.
    #[test]
    fn bihm_arms_also_show_p() {
        let rws = arm(
            "rws",
            vec![vec![point(1.0, 5.0, 120.0), point(2.0, 10.0, 115.0)]],
        );
        let bihm_point = |epoch, nll, nll_p| CurvePoint {
            nll_p,
            ..point(epoch, 4.0 * epoch, nll)
        };
        let bihm = arm(
            "bihm",
            vec![
                vec![bihm_point(1.0, 110.0, 112.0), bihm_point(2.0, 100.0, 103.0)],
                vec![bihm_point(1.0, 112.0, 114.0), bihm_point(2.0, 102.0, 105.0)],
            ],
        );
        let text = tables(&[rws.clone(), bihm.clone()], 100, 2, &[]);
        assert!(
            text.contains("| bihm | 111.00 ± 1.41 | 101.00 ± 1.41 | 4.00 |"),
            "{text}"
        );
        let p_table = text
            .split("BiHM arms, test NLL of p")
            .nth(1)
            .and_then(|rest| rest.split("Seconds per epoch").next())
            .expect("a table of p for the BiHM arm");
        assert!(
            p_table.contains("| arm | epoch 1 | epoch 2 |\n|---|---|---|\n| bihm | 113.00 ± 1.41 | 104.00 ± 1.41 |\n"),
            "{text}"
        );
        assert!(!p_table.contains("| rws |"), "{text}");
        assert!(!tables(&[rws], 100, 1, &[]).contains("test NLL of p"));
        assert_eq!(bihm.nll_p_at(2), Some((104.0, 2f64.sqrt())));
    }

    /// Side-by-side epoch times put every seed of an arm on one time axis and say so.
    #[test]
    fn given_epoch_times_set_the_time_axis() {
        let mut runs = arm(
            "a",
            vec![
                vec![point(1.0, 9.0, 120.0), point(2.0, 20.0, 110.0)],
                vec![point(1.0, 11.0, 122.0), point(2.0, 24.0, 108.0)],
            ],
        );
        runs.time_epochs_by(7.5);
        assert_eq!(runs.mean_curve()[1].seconds, 15.0);
        assert_eq!(runs.seconds_per_epoch(), 7.5);
        let other = arm("b", vec![vec![point(1.0, 3.0, 130.0)]]);
        let text = tables(&[runs, other], 100, 2, &["a"]);
        assert!(
            text.contains("given (--epoch-seconds, a side-by-side timing) for a; each run's median epoch time for b."),
            "{text}"
        );
        assert!(text.contains("mean ± sd over 2 seeds"), "{text}");
        assert!(
            text.contains("| a | 121.00 ± 1.41 | 109.00 ± 1.41 | 7.50 |"),
            "{text}"
        );
        assert!(text.contains("| b | 130.00 | – |"), "{text}");
    }

    /// Seeds estimated at different epochs average at the epochs they share.
    #[test]
    fn the_mean_curve_takes_the_epochs_all_seeds_share() {
        let runs = arm(
            "a",
            vec![
                vec![
                    point(1.0, 10.0, 120.0),
                    point(2.0, 20.0, 110.0),
                    point(4.0, 40.0, 100.0),
                ],
                vec![point(2.0, 22.0, 114.0), point(4.0, 44.0, 104.0)],
            ],
        );
        assert_eq!(
            runs.mean_curve(),
            [point(2.0, 21.0, 112.0), point(4.0, 42.0, 102.0)]
        );
    }

    /// With estimates after some epochs only (--test-every), the table shows those of 1, 2, 5,
    /// 10, … that were estimated, and the last.
    #[test]
    fn the_table_shows_the_estimated_epochs() {
        let runs = arm(
            "a",
            vec![vec![
                point(5.0, 50.0, 110.0),
                point(10.0, 100.0, 105.0),
                point(12.0, 120.0, 104.0),
            ]],
        );
        let text = tables(&[runs], 100, 1, &[]);
        assert!(
            text.contains("| arm | epoch 5 | epoch 10 | epoch 12 | s per epoch |"),
            "{text}"
        );
        assert!(
            text.contains("| a | 110.00 | 105.00 | 104.00 | 10.00 |"),
            "{text}"
        );
    }
}
