//! The data of an `mle` run: its files read as tables ([`crate::data::table`]), one column
//! picked where asked, checked for what the family models (non-negative integers for counts,
//! values strictly inside (0, 1) for the copula, spread in every column for the skew families),
//! and the transform fitted on the training file and applied to the others.

use std::path::Path;

use faer::Mat;

use super::{Family, MleConfig};
use crate::data::table::{ColumnRef, HeaderUse, Table, TableOptions, Transform, read_table};
use crate::dist::negative_binomial::Counts;
use crate::error::{Error, Result};

/// Observations as a family takes them.
#[derive(Clone, Debug)]
pub enum Observations {
    /// One column of counts.
    Counts(Counts),
    /// Points, one per row (transformed where the run transforms).
    Points(Mat<f64>),
}

impl Observations {
    /// Number of observations.
    pub fn rows(&self) -> usize {
        match self {
            Observations::Counts(c) => c.len(),
            Observations::Points(x) => x.nrows(),
        }
    }
}

/// The training and test data of a run, with the column names and the fitted transform.
#[derive(Clone, Debug)]
pub struct RunTables {
    /// Training observations.
    pub train: Observations,
    /// Held-out observations, if a test file was given.
    pub test: Option<Observations>,
    /// The names of the columns modelled.
    pub columns: Vec<String>,
    /// The transform fitted on the training file (the identity for counts and copulas).
    pub transform: Transform,
    /// Lines for the log (a header read from the file's first row).
    pub notes: Vec<String>,
}

/// Reads the training (and test) files of `config`, checks them for the family and fits the
/// transform on the training file.
pub fn read_tables(config: &MleConfig) -> Result<RunTables> {
    let mut notes = Vec::new();
    let train_path = &config.data.train;
    let (train, columns, header) = read_values(config, train_path, &mut notes)?;
    check_spread(config.model.family, train_path, &train, &columns)?;
    let transform = if config.model.family.counts() {
        Transform::identity(train.ncols())
    } else {
        Transform::fit(config.data.transform, train.as_ref(), &columns)?
    };
    let read = Read {
        config,
        columns: &columns,
        transform: &transform,
    };
    let train_obs = read.observations(train_path, &train, header)?;
    let test = match &config.data.test {
        Some(path) => {
            let (test, _, header) = read_values(config, path, &mut notes)?;
            Some(read.observations(path, &test, header)?)
        }
        None => None,
    };
    Ok(RunTables {
        train: train_obs,
        test,
        columns,
        transform,
        notes,
    })
}

/// Reads `path` as the run's training file was read (same options and column), checked for the
/// family and transformed by `transform`: new data for `helmholtz eval`.
pub fn read_observations(
    config: &MleConfig,
    path: &Path,
    columns: &[String],
    transform: &Transform,
) -> Result<(Observations, Vec<String>)> {
    let mut notes = Vec::new();
    let (values, _, header) = read_values(config, path, &mut notes)?;
    let read = Read {
        config,
        columns,
        transform,
    };
    Ok((read.observations(path, &values, header)?, notes))
}

/// The table of `path` with the configured column picked, its column names, and whether its
/// first row was a header.
fn read_values(
    config: &MleConfig,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<(Mat<f64>, Vec<String>, bool)> {
    let d = &config.data;
    let options = TableOptions {
        header: d.header,
        delimiter: d.delimiter.map(|c| c as u8),
        label: None,
    };
    let table = read_table(path, &options)?;
    notes.extend(table.header_note());
    let header = matches!(table.header, HeaderUse::Given | HeaderUse::Detected);
    let Some(column) = &d.column else {
        return Ok((table.values.clone(), table.columns.clone(), header));
    };
    let index = pick_column(&table, column)?;
    let values = Mat::from_fn(table.rows(), 1, |i, _| table.values[(i, index)]);
    Ok((values, vec![table.columns[index].clone()], header))
}

/// The index of `column` in `table`, or an error naming the columns there are.
fn pick_column(table: &Table, column: &ColumnRef) -> Result<usize> {
    let found = match column {
        ColumnRef::Index(i) => (*i < table.columns.len()).then_some(*i),
        ColumnRef::Name(name) => table.columns.iter().position(|c| c == name),
    };
    found.ok_or_else(|| {
        Error::format(
            &table.path,
            format!(
                "data.column = {column} does not exist: the columns are {} (0-based indices{})",
                table.columns.join(", "),
                if table.header == HeaderUse::NotCsv || table.header == HeaderUse::Data {
                    "; the file has no header, so no names"
                } else {
                    " or header names"
                }
            ),
        )
    })
}

/// The 1-based row of observation `i` as the user sees it in the file (after a header).
fn file_row(path: &Path, i: usize, header: bool) -> usize {
    let csv = !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy") || e.eq_ignore_ascii_case("npz"));
    i + 1 + usize::from(csv && header)
}

/// How a file's values become observations: the run's config, columns and transform.
struct Read<'a> {
    config: &'a MleConfig,
    columns: &'a [String],
    transform: &'a Transform,
}

impl Read<'_> {
    /// `values` read from `path` (whose first row was a header when `header`), checked for
    /// the family and made its observations.
    fn observations(&self, path: &Path, values: &Mat<f64>, header: bool) -> Result<Observations> {
        let (config, columns, transform) = (self.config, self.columns, self.transform);
        let family = config.model.family;
        let (n, d) = (values.nrows(), values.ncols());
        if d != columns.len() {
            return Err(Error::format(
                path,
                format!(
                    "{d} columns, but the run was fitted on {} ({})",
                    columns.len(),
                    columns.join(", ")
                ),
            ));
        }
        if family.counts() {
            if d != 1 {
                return Err(Error::format(
                    path,
                    format!(
                        "the {} family models one column of counts; the table has {d} columns ({}): choose one with data.column",
                        family.name(),
                        columns.join(", ")
                    ),
                ));
            }
            let mut counts = Vec::with_capacity(n);
            for i in 0..n {
                let v = values[(i, 0)];
                if !(v >= 0.0 && v.fract() == 0.0 && v <= 9.0e15) {
                    return Err(Error::format(
                        path,
                        format!(
                            "row {}, column {}: {v} is not a count (the {} family models non-negative integers)",
                            file_row(path, i, header),
                            columns[0],
                            family.name()
                        ),
                    ));
                }
                counts.push(v as u64);
            }
            return Ok(Observations::Counts(Counts::new(&counts)?));
        }
        if family == Family::TCopula {
            for i in 0..n {
                for j in 0..d {
                    let v = values[(i, j)];
                    if !(v > 0.0 && v < 1.0) {
                        return Err(Error::format(
                            path,
                            format!(
                                "row {}, column {}: {v} is not strictly between 0 and 1; the t-copula models pseudo-observations in (0, 1): transform each column to its ranks/(n + 1) first",
                                file_row(path, i, header),
                                columns[j]
                            ),
                        ));
                    }
                }
            }
            return Ok(Observations::Points(values.clone()));
        }
        transform.check_columns(values.as_ref(), &path.display().to_string())?;
        Ok(Observations::Points(transform.apply(values.as_ref())))
    }
}

/// A continuous family's training data must have more rows than columns and spread in every
/// column (else the fitted scale matrix is singular).
fn check_spread(family: Family, path: &Path, values: &Mat<f64>, columns: &[String]) -> Result<()> {
    if family.counts() || family == Family::TCopula {
        return Ok(());
    }
    let (n, d) = (values.nrows(), values.ncols());
    if n <= d {
        return Err(Error::format(
            path,
            format!(
                "{n} rows of {d} columns: a {} of dimension {d} needs more rows than columns",
                family.name()
            ),
        ));
    }
    for j in 0..d {
        let first = values[(0, j)];
        if (0..n).all(|i| values[(i, j)] == first) {
            return Err(Error::format(
                path,
                format!(
                    "column {} is constant (every value is {first}): a {} has no density on data without spread in a column; drop the column",
                    columns[j],
                    family.name()
                ),
            ));
        }
    }
    Ok(())
}
