//! How the step size along a direction is chosen; every method's step goes through
//! [`search_step`].

/// How the step size along a direction is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch {
    /// A fixed step; it must stay in the domain.
    Fixed(f64),
    /// Start at `start` and halve up to `halvings` times until the point is in the domain (the
    /// authors' validity backtracking; no decrease is required and the objective is not
    /// evaluated).
    Backtracking {
        /// First step.
        start: f64,
        /// Halvings at most.
        halvings: usize,
    },
    /// Start at `start` and halve up to `halvings` times until the point is in the domain and
    /// the objective (λ held) is no larger than at the step's start; when no step size does,
    /// the surrogate stays where it is for this step. A descent method on a fixed (full-batch)
    /// objective, where [`LineSearch::Backtracking`] may climb.
    Decrease {
        /// First step.
        start: f64,
        /// Halvings at most.
        halvings: usize,
    },
    /// The best of `points` equally spaced steps in (0, 1] by the objective (the authors' NB
    /// line search); ties go to the smaller step.
    Grid {
        /// Number of grid points.
        points: usize,
    },
}

impl LineSearch {
    /// Refuses a step that is not a finite positive number and a grid without points.
    pub fn validate(self) -> crate::error::Result<()> {
        match self {
            LineSearch::Fixed(step) => crate::optim::check_step_size("the step size β", step),
            LineSearch::Backtracking { start, .. } | LineSearch::Decrease { start, .. } => {
                crate::optim::check_step_size("the first step size β of the backtracking", start)
            }
            LineSearch::Grid { points: 0 } => Err(crate::error::Error::Config(
                "the grid line search needs at least one point".into(),
            )),
            LineSearch::Grid { .. } => Ok(()),
        }
    }

    /// Whether candidates are compared by their objective (otherwise only their domain counts).
    pub fn needs_values(self) -> bool {
        matches!(self, LineSearch::Grid { .. } | LineSearch::Decrease { .. })
    }
}

/// The candidate chosen by `search` among step sizes β; `candidate(β)` gives the point and its
/// value (any finite number when the search does not compare values), or None outside the
/// domain. None when no candidate is valid.
pub fn search_step<T: Send>(
    search: LineSearch,
    candidate: impl Fn(f64) -> Option<(T, f64)> + Sync,
) -> Option<(T, f64)> {
    let valid = |beta: f64| candidate(beta).filter(|(_, v)| v.is_finite());
    match search {
        LineSearch::Fixed(beta) => valid(beta),
        LineSearch::Backtracking { start, halvings } | LineSearch::Decrease { start, halvings } => {
            (0..=halvings).find_map(|k| valid(start / 2f64.powi(k as i32)))
        }
        LineSearch::Grid { points } => {
            use rayon::prelude::*;
            // Ties go to the smaller step, as a sequential scan would choose.
            (1..=points)
                .into_par_iter()
                .filter_map(|k| valid(k as f64 / points as f64).map(|found| (k, found)))
                .min_by(|a, b| a.1.1.total_cmp(&b.1.1).then(a.0.cmp(&b.0)))
                .map(|(_, found)| found)
        }
    }
}

/// The point x − β d chosen by `search`, with its value; `evaluate` returns None outside the
/// domain. None when no candidate is valid.
pub fn search_along(
    x: &[f64],
    direction: &[f64],
    search: LineSearch,
    evaluate: impl Fn(&[f64]) -> Option<f64> + Sync,
) -> Option<(Vec<f64>, f64)> {
    search_step(search, |beta| {
        let point: Vec<f64> = x.iter().zip(direction).map(|(a, d)| a - beta * d).collect();
        evaluate(&point).map(|v| (point, v))
    })
}
