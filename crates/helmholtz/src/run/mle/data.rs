//! The data of an `mle` run: its files read as tables ([`crate::data::table`]), one column
//! picked where asked, checked for what the family models (non-negative integers for counts,
//! values strictly inside (0, 1) for the copula, spread in every column for the skew families),
//! and the transform fitted on the training file and applied to the others.

use std::path::{Path, PathBuf};

use faer::{Mat, MatRef};

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

/// A table's values as a run reads them: n × d values (the configured column picked), the
/// column names, where they came from and whether the first row was a header.
struct Values {
    path: PathBuf,
    values: Mat<f64>,
    columns: Vec<String>,
    header: bool,
}

impl Values {
    /// Values already in memory (an [`Table::from_values`] table): `origin` names them.
    fn in_memory(values: MatRef<'_, f64>, origin: &Path) -> Result<Self> {
        let table = Table::from_values(values, origin)?;
        Ok(Values {
            path: table.path,
            values: table.values,
            columns: table.columns,
            header: false,
        })
    }
}

/// Reads the training (and test) files of `config`, checks them for the family and fits the
/// transform on the training file.
pub fn read_tables(config: &MleConfig) -> Result<RunTables> {
    let mut notes = Vec::new();
    let train = read_values(config, &config.data.train, &mut notes)?;
    let test = match &config.data.test {
        Some(path) => Some(read_values(config, path, &mut notes)?),
        None => None,
    };
    tables(config, train, test, notes)
}

/// The tables of a run whose data are arrays in memory rather than files (n × d, one
/// observation per row; counts as whole numbers in one column), checked as files are: errors
/// name them `data` and `test` (the Python package's arguments), rows counted from 1.
pub fn array_tables(
    config: &MleConfig,
    train: MatRef<'_, f64>,
    test: Option<MatRef<'_, f64>>,
) -> Result<RunTables> {
    let train = Values::in_memory(train, Path::new("data"))?;
    let test = test
        .map(|t| Values::in_memory(t, Path::new("test")))
        .transpose()?;
    tables(config, train, test, Vec::new())
}

/// The run's tables from the values read: checked for the family, the transform fitted on the
/// training values and applied to both.
fn tables(
    config: &MleConfig,
    train: Values,
    test: Option<Values>,
    notes: Vec<String>,
) -> Result<RunTables> {
    check_spread(
        config.model.family,
        &train.path,
        &train.values,
        &train.columns,
    )?;
    let transform = if config.model.family.counts() {
        Transform::identity(train.values.ncols())
    } else {
        Transform::fit(config.data.transform, train.values.as_ref(), &train.columns)?
    };
    let read = Read {
        config,
        columns: &train.columns,
        transform: &transform,
    };
    let train_obs = read.observations(&train)?;
    let test = test.map(|t| read.observations(&t)).transpose()?;
    Ok(RunTables {
        train: train_obs,
        test,
        columns: train.columns,
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
    let values = read_values(config, path, &mut notes)?;
    let read = Read {
        config,
        columns,
        transform,
    };
    Ok((read.observations(&values)?, notes))
}

/// New data in memory (n × d), checked and transformed as [`read_observations`] does with a
/// file; `origin` names them in errors.
pub fn observations_of_values(
    config: &MleConfig,
    values: MatRef<'_, f64>,
    origin: &Path,
    columns: &[String],
    transform: &Transform,
) -> Result<Observations> {
    let values = Values::in_memory(values, origin)?;
    let read = Read {
        config,
        columns,
        transform,
    };
    read.observations(&values)
}

/// The table of `path` with the configured column picked, its column names, and whether its
/// first row was a header.
fn read_values(config: &MleConfig, path: &Path, notes: &mut Vec<String>) -> Result<Values> {
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
        return Ok(Values {
            path: path.to_path_buf(),
            values: table.values,
            columns: table.columns,
            header,
        });
    };
    let index = pick_column(&table, column)?;
    let values = Mat::from_fn(table.rows(), 1, |i, _| table.values[(i, index)]);
    Ok(Values {
        path: path.to_path_buf(),
        values,
        columns: vec![table.columns[index].clone()],
        header,
    })
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
    /// `values` checked for the family and made its observations.
    fn observations(&self, values: &Values) -> Result<Observations> {
        let (config, columns, transform) = (self.config, self.columns, self.transform);
        let (path, header, values) = (values.path.as_path(), values.header, &values.values);
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
