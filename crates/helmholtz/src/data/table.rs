//! Tables of real numbers from the user's files, in f64, one row per observation: CSV or TSV
//! (plain or gzip-compressed), `.npy`, or an `.npz` archive; an optional label column; and the
//! [`Transform`] (none, min-max, standardize) fitted on a training table and applied to others.
//!
//! This is the reader of the continuous and count models (SNGD fits, variational inference);
//! the image models read [`super::Dataset`]s in f32.
//!
//! ```
//! use helmholtz::data::table::{parse_table, TableOptions, Transform, TransformKind};
//!
//! let text = b"height,weight\n1.5,60\n1.7,70\n1.9,80\n";
//! let table = parse_table(text, "people.csv".as_ref(), &TableOptions::default())?;
//! assert_eq!(table.columns, vec!["height", "weight"]);
//! assert_eq!((table.values.nrows(), table.values.ncols()), (3, 2));
//! assert!(table.header_note().unwrap().contains("header"));
//! let t = Transform::fit(TransformKind::Standardize, table.values.as_ref(), &table.columns)?;
//! let z = t.apply(table.values.as_ref());
//! assert!(z[(1, 1)].abs() < 1e-12 && (z[(0, 1)] + z[(2, 1)]).abs() < 1e-12);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::path::{Path, PathBuf};

use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};

use super::csv::{FirstRow, first_row, mixed_first_row, number};
use super::idx::read_maybe_gzip;
use super::npy::{NpyArray, read_npy, read_npz};
use crate::error::{Error, Result};

/// A column chosen by 0-based index or by its header name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    /// 0-based index.
    Index(usize),
    /// The name in the header row.
    Name(String),
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "column {i} (0-based)"),
            ColumnRef::Name(n) => write!(f, "column {n:?}"),
        }
    }
}

/// How a table is read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableOptions {
    /// CSV: whether the first row is a header (`Some(true)`), data (`Some(false)`), or, when
    /// `None`, a header exactly when none of its fields is a number (a row mixing numbers and
    /// words is an error naming row 1).
    pub header: Option<bool>,
    /// CSV: the delimiter; `None` is a tab for `.tsv` files and a comma otherwise.
    pub delimiter: Option<u8>,
    /// A column removed from the values and returned as [`Table::labels`] (for NPZ archives,
    /// a member name: the labels are that member, e.g. `y`).
    pub label: Option<ColumnRef>,
}

/// What was done with a CSV file's first row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderUse {
    /// Not a CSV file (NPY, NPZ).
    NotCsv,
    /// Read as a header because the options said so.
    Given,
    /// Read as a header because none of its fields is a number.
    Detected,
    /// Read as data (the options said so, or every field is a number).
    Data,
}

/// A table of finite real numbers, one row per observation.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// Values, n × d.
    pub values: Mat<f64>,
    /// Column names: the header's, or `x1`, `x2`, … (labels excluded).
    pub columns: Vec<String>,
    /// The label column's values, if one was asked for.
    pub labels: Option<Vec<f64>>,
    /// What was done with the first row.
    pub header: HeaderUse,
}

impl Table {
    /// A line for the log when the header was decided from the file (None otherwise).
    pub fn header_note(&self) -> Option<String> {
        match self.header {
            HeaderUse::Detected => Some(format!(
                "{}: row 1 read as a header ({}) because none of its fields is a number; set data.header = false to read it as data",
                self.path.display(),
                self.columns.join(", ")
            )),
            _ => None,
        }
    }

    /// Observations.
    pub fn rows(&self) -> usize {
        self.values.nrows()
    }

    /// The values of one row.
    pub fn row(&self, i: usize) -> Vec<f64> {
        (0..self.values.ncols())
            .map(|j| self.values[(i, j)])
            .collect()
    }

    /// A table of values already in memory (n × d, one observation per row), as an NPY file
    /// of them would be read: columns `x1`, `x2`, …, no labels, every value finite and at least
    /// one row and one column. `origin` names the values in errors (the Python package passes
    /// its argument's name).
    pub fn from_values(values: MatRef<'_, f64>, origin: &Path) -> Result<Table> {
        let (n, d) = (values.nrows(), values.ncols());
        if n == 0 || d == 0 {
            return Err(Error::format(
                origin,
                format!("{n} rows of {d} columns hold no values"),
            ));
        }
        for i in 0..n {
            for j in 0..d {
                let v = values[(i, j)];
                if !v.is_finite() {
                    return Err(Error::format(
                        origin,
                        format!(
                            "row {}, column x{} is {v} (every value must be finite)",
                            i + 1,
                            j + 1
                        ),
                    ));
                }
            }
        }
        Ok(Table {
            path: origin.to_path_buf(),
            values: values.to_owned(),
            columns: default_names(d),
            labels: None,
            header: HeaderUse::NotCsv,
        })
    }
}

fn default_names(d: usize) -> Vec<String> {
    (1..=d).map(|j| format!("x{j}")).collect()
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Reads a table from `path`: `.npy`, `.npz`, and otherwise CSV (`.tsv`: tab-separated;
/// gzip-compressed files are recognised by their first bytes).
pub fn read_table(path: &Path, options: &TableOptions) -> Result<Table> {
    if has_extension(path, "npy") {
        return table_from_npy(read_npy(path)?, path, options.label.as_ref(), None);
    }
    if has_extension(path, "npz") {
        let members = read_npz(path)?;
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let label_member = match &options.label {
            Some(ColumnRef::Name(name)) if names.contains(name) => Some(name.clone()),
            _ => None,
        };
        let values: Vec<&(String, NpyArray)> = members
            .iter()
            .filter(|(n, _)| Some(n) != label_member.as_ref())
            .collect();
        let chosen = match values.as_slice() {
            [(_, only)] => only,
            _ => values
                .iter()
                .find(|(n, _)| n == "x")
                .map(|(_, a)| a)
                .ok_or_else(|| {
                    Error::format(
                        path,
                        format!(
                            "NPZ: the archive holds {names:?}; the values are its only member or the one named \"x\" (and the labels a member named by data.label)"
                        ),
                    )
                })?,
        };
        let labels = match &label_member {
            Some(name) => {
                let (_, array) = members.iter().find(|(n, _)| n == name).expect("present");
                Some(array)
            }
            None => None,
        };
        let column_label = if label_member.is_some() {
            None
        } else {
            options.label.as_ref()
        };
        return table_from_npy(chosen.clone(), path, column_label, labels);
    }
    let bytes = read_maybe_gzip(path)?;
    parse_table(&bytes, path, options)
}

fn table_from_npy(
    array: NpyArray,
    path: &Path,
    label: Option<&ColumnRef>,
    label_member: Option<&NpyArray>,
) -> Result<Table> {
    let (n, d) = match array.shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        other => {
            return Err(Error::format(
                path,
                format!(
                    "NPY: an array of shape {other:?} is not a table (accepted: (n, d) for n observations of d values, or (n,))"
                ),
            ));
        }
    };
    if n == 0 || d == 0 {
        return Err(Error::format(
            path,
            format!("NPY: the array of shape {:?} holds no values", array.shape),
        ));
    }
    if let Some(k) = array.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!(
                "NPY: row {}, column {} is {} (every value must be finite)",
                k / d + 1,
                k % d + 1,
                array.data[k]
            ),
        ));
    }
    let label_index = match label {
        None => None,
        Some(ColumnRef::Index(i)) if *i < d => Some(*i),
        Some(other) => {
            return Err(Error::format(
                path,
                format!(
                    "data.label = {other} does not exist: the array has {d} columns (0-based indices 0 to {}){}",
                    d - 1,
                    if matches!(other, ColumnRef::Name(_)) {
                        "; an NPY array has no column names"
                    } else {
                        ""
                    }
                ),
            ));
        }
    };
    let kept: Vec<usize> = (0..d).filter(|&j| Some(j) != label_index).collect();
    if kept.is_empty() {
        return Err(Error::format(
            path,
            "the label column is the array's only column: no values are left",
        ));
    }
    let values = Mat::from_fn(n, kept.len(), |i, j| array.data[i * d + kept[j]]);
    let mut labels = label_index.map(|l| (0..n).map(|i| array.data[i * d + l]).collect());
    if let Some(member) = label_member {
        if member.data.len() != n || member.shape.len() > 2 {
            return Err(Error::format(
                path,
                format!(
                    "NPZ: the labels have shape {:?}, the values {n} rows: one label per row expected",
                    member.shape
                ),
            ));
        }
        if let Some(k) = member.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(
                path,
                format!(
                    "NPZ: label {} is {} (labels must be finite)",
                    k + 1,
                    member.data[k]
                ),
            ));
        }
        labels = Some(member.data.clone());
    }
    Ok(Table {
        path: path.to_path_buf(),
        values,
        columns: default_names(kept.len()),
        labels,
        header: HeaderUse::NotCsv,
    })
}

/// Parses CSV text already in memory; `path` names the file in errors and picks the default
/// delimiter (tab for `.tsv`).
pub fn parse_table(bytes: &[u8], path: &Path, options: &TableOptions) -> Result<Table> {
    let delimiter = options.delimiter.unwrap_or(if has_extension(path, "tsv") {
        b'\t'
    } else {
        b','
    });
    let mut reader = super::csv::reader(bytes, delimiter);
    let mut names: Option<Vec<String>> = None;
    let mut header = HeaderUse::Data;
    let mut width: Option<usize> = None;
    let mut values: Vec<f64> = Vec::new();
    let mut rows = 0usize;
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::format(path, format!("CSV: {e}")))?;
        let row = record.position().map_or(index + 1, |p| p.line() as usize);
        if record.len() == 1 && record.get(0) == Some("") {
            continue; // a blank line
        }
        if index == 0 {
            let is_header = match first_row(&record, options.header) {
                FirstRow::Mixed { column, cell } => {
                    return Err(mixed_first_row(path, row, column, cell));
                }
                decided => decided == FirstRow::Header,
            };
            if is_header {
                header = if options.header == Some(true) {
                    HeaderUse::Given
                } else {
                    HeaderUse::Detected
                };
                names = Some(record.iter().map(str::to_string).collect());
                width = Some(record.len());
                continue;
            }
        }
        match width {
            None => width = Some(record.len()),
            Some(w) if w != record.len() => {
                return Err(Error::format(
                    path,
                    format!(
                        "ragged rows: row {row} has {} fields, {} has {w}",
                        record.len(),
                        if names.is_some() {
                            "the header"
                        } else {
                            "row 1"
                        }
                    ),
                ));
            }
            Some(_) => {}
        }
        for (col, cell) in record.iter().enumerate() {
            values.push(number(cell, path, row, col)?);
        }
        rows += 1;
    }
    let Some(d) = width else {
        return Err(Error::format(path, "the file holds no rows"));
    };
    if rows == 0 {
        return Err(Error::format(
            path,
            "the file holds a header but no data rows",
        ));
    }
    let names = names.unwrap_or_else(|| default_names(d));
    let label_index = match &options.label {
        None => None,
        Some(ColumnRef::Index(i)) if *i < d => Some(*i),
        Some(ColumnRef::Name(name)) if names.contains(name) => names.iter().position(|n| n == name),
        Some(other) => {
            return Err(Error::format(
                path,
                format!(
                    "data.label = {other} does not exist: the columns are {} (0-based indices or header names)",
                    names.join(", ")
                ),
            ));
        }
    };
    let kept: Vec<usize> = (0..d).filter(|&j| Some(j) != label_index).collect();
    if kept.is_empty() {
        return Err(Error::format(
            path,
            "the label column is the file's only column: no values are left",
        ));
    }
    Ok(Table {
        path: path.to_path_buf(),
        values: Mat::from_fn(rows, kept.len(), |i, j| values[i * d + kept[j]]),
        columns: kept.iter().map(|&j| names[j].clone()).collect(),
        labels: label_index.map(|l| (0..rows).map(|i| values[i * d + l]).collect()),
        header,
    })
}

/// Writes `values` (n × d) as CSV with a header of `columns`, to a file that must not exist
/// unless `force`; values are written with Rust's shortest exact representation.
pub fn write_csv(
    path: &Path,
    columns: &[String],
    values: MatRef<'_, f64>,
    force: bool,
) -> Result<()> {
    if columns.len() != values.ncols() {
        return Err(Error::Config(format!(
            "{} column names for {} columns",
            columns.len(),
            values.ncols()
        )));
    }
    if !force && path.exists() {
        return Err(Error::Config(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        )));
    }
    let mut text = columns.join(",");
    text.push('\n');
    for i in 0..values.nrows() {
        let row: Vec<String> = (0..values.ncols())
            .map(|j| values[(i, j)].to_string())
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Which transform of the values a continuous model sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransformKind {
    /// The values as they are.
    #[default]
    None,
    /// Each column mapped affinely onto [0, 1] by the training split's minimum and maximum.
    MinMax,
    /// Each column centred on the training split's mean and divided by its standard deviation.
    Standardize,
}

impl TransformKind {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            TransformKind::None => "none",
            TransformKind::MinMax => "min-max",
            TransformKind::Standardize => "standardize",
        }
    }
}

/// A per-column affine map z = (x − shift) / scale, fitted on a training table and stored in a
/// run, so new data is mapped as the training data was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Which transform.
    pub kind: TransformKind,
    /// Subtracted from each column.
    pub shift: Vec<f64>,
    /// Each column is divided by this after the shift.
    pub scale: Vec<f64>,
}

impl Transform {
    /// The identity on `d` columns.
    pub fn identity(d: usize) -> Self {
        Transform {
            kind: TransformKind::None,
            shift: vec![0.0; d],
            scale: vec![1.0; d],
        }
    }

    /// Fits `kind` on `x` (n × d); `columns` name the columns in errors. A column that is
    /// constant in the training split cannot be scaled: an error names it.
    pub fn fit(kind: TransformKind, x: MatRef<'_, f64>, columns: &[String]) -> Result<Self> {
        let (n, d) = (x.nrows(), x.ncols());
        if kind == TransformKind::None {
            return Ok(Transform::identity(d));
        }
        if n < 2 {
            return Err(Error::Config(format!(
                "transform = \"{}\" needs at least 2 training rows, got {n}",
                kind.name()
            )));
        }
        let mut shift = Vec::with_capacity(d);
        let mut scale = Vec::with_capacity(d);
        for j in 0..d {
            let column = (0..n).map(|i| x[(i, j)]);
            let (s, c) = match kind {
                TransformKind::MinMax => {
                    let (lo, hi) = column
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                            (lo.min(v), hi.max(v))
                        });
                    (lo, hi - lo)
                }
                TransformKind::Standardize => {
                    let mean = column.clone().sum::<f64>() / n as f64;
                    let var = column.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                    (mean, var.sqrt())
                }
                TransformKind::None => unreachable!("handled above"),
            };
            if !(c > 0.0 && c.is_finite()) {
                let name = columns
                    .get(j)
                    .cloned()
                    .unwrap_or_else(|| format!("x{}", j + 1));
                return Err(Error::Config(format!(
                    "column {name} is constant in the training data (every value {}): transform = \"{}\" cannot scale it; drop the column",
                    x[(0, j)],
                    kind.name()
                )));
            }
            shift.push(s);
            scale.push(c);
        }
        Ok(Transform { kind, shift, scale })
    }

    /// z = (x − shift) / scale, row by row; `x` must have the fitted number of columns.
    pub fn apply(&self, x: MatRef<'_, f64>) -> Mat<f64> {
        Mat::from_fn(x.nrows(), x.ncols(), |i, j| {
            (x[(i, j)] - self.shift[j]) / self.scale[j]
        })
    }

    /// x = shift + scale · z.
    pub fn invert(&self, z: MatRef<'_, f64>) -> Mat<f64> {
        Mat::from_fn(z.nrows(), z.ncols(), |i, j| {
            self.shift[j] + self.scale[j] * z[(i, j)]
        })
    }

    /// Checks that `x` has the fitted number of columns; `what` names it.
    pub fn check_columns(&self, x: MatRef<'_, f64>, what: &str) -> Result<()> {
        if x.ncols() != self.shift.len() {
            return Err(Error::Config(format!(
                "{what} has {} columns; the model was fitted on {}",
                x.ncols(),
                self.shift.len()
            )));
        }
        Ok(())
    }

    /// Σ_j ln scale_j: the log-density of the data is that of its transform minus this, so an
    /// NLL per point in the data's own units is the transformed NLL plus this.
    pub fn log_scale(&self) -> f64 {
        self.scale.iter().map(|s| s.ln()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, options: &TableOptions) -> Result<Table> {
        parse_table(text.as_bytes(), Path::new("t.csv"), options)
    }

    /// Values in memory read as the NPY file of them: same values and names; a NaN or an empty
    /// array is refused naming the origin, the row and the column.
    #[test]
    fn values_in_memory_read_as_their_npy_file() {
        let values = Mat::from_fn(3, 2, |i, j| (i * 2 + j) as f64 - 1.5);
        let dir = std::env::temp_dir().join(format!("table-values-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.npy");
        std::fs::write(&file, super::super::npy::npy_bytes(values.as_ref())).unwrap();
        let from_file = read_table(&file, &TableOptions::default()).unwrap();
        let in_memory = Table::from_values(values.as_ref(), Path::new("X")).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(in_memory.values, from_file.values);
        assert_eq!(in_memory.columns, from_file.columns);
        assert_eq!(in_memory.header, HeaderUse::NotCsv);
        let mut bad = values.clone();
        bad[(2, 1)] = f64::NAN;
        let err = Table::from_values(bad.as_ref(), Path::new("X"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("X: row 3, column x2 is NaN"), "{err}");
        let empty = Mat::<f64>::zeros(0, 2);
        let err = Table::from_values(empty.as_ref(), Path::new("X"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hold no values"), "{err}");
    }

    #[test]
    fn headers_are_detected_given_or_refused() {
        let t = parse("a,b\n1,2\n3,4\n", &TableOptions::default()).unwrap();
        assert_eq!(t.header, HeaderUse::Detected);
        assert_eq!(t.columns, vec!["a", "b"]);
        assert_eq!(t.rows(), 2);
        let t = parse("1,2\n3,4\n", &TableOptions::default()).unwrap();
        assert_eq!(t.header, HeaderUse::Data);
        assert_eq!(t.columns, vec!["x1", "x2"]);
        assert!(t.header_note().is_none());
        let err = parse("a,2\n3,4\n", &TableOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("row 1, column 1"), "{err}");
        let given = TableOptions {
            header: Some(true),
            ..TableOptions::default()
        };
        let t = parse("1,2\n3,4\n", &given).unwrap();
        assert_eq!((t.header, t.rows()), (HeaderUse::Given, 1));
        let data = TableOptions {
            header: Some(false),
            ..TableOptions::default()
        };
        let err = parse("a,b\n3,4\n", &data).unwrap_err().to_string();
        assert!(
            err.contains("row 1, column 1: 'a' is not a number"),
            "{err}"
        );
    }

    #[test]
    fn labels_by_index_or_name_and_delimiters() {
        let by_name = TableOptions {
            label: Some(ColumnRef::Name("y".into())),
            ..TableOptions::default()
        };
        let t = parse("x,y,z\n1,0,2\n3,1,4\n", &by_name).unwrap();
        assert_eq!(t.labels, Some(vec![0.0, 1.0]));
        assert_eq!(t.columns, vec!["x", "z"]);
        assert_eq!(t.values[(1, 1)], 4.0);
        let by_index = TableOptions {
            label: Some(ColumnRef::Index(0)),
            delimiter: Some(b';'),
            ..TableOptions::default()
        };
        let t = parse("5;1\n6;2\n", &by_index).unwrap();
        assert_eq!(t.labels, Some(vec![5.0, 6.0]));
        assert_eq!(t.values[(1, 0)], 2.0);
        let tsv = parse_table(b"1\t2\n", Path::new("t.tsv"), &TableOptions::default()).unwrap();
        assert_eq!(tsv.values.ncols(), 2);
        let missing = TableOptions {
            label: Some(ColumnRef::Name("w".into())),
            ..TableOptions::default()
        };
        let err = parse("x,y\n1,2\n", &missing).unwrap_err().to_string();
        assert!(
            err.contains("\"w\" does not exist") && err.contains("x, y"),
            "{err}"
        );
    }

    #[test]
    fn bad_cells_and_shapes_name_their_row() {
        let d = TableOptions::default();
        let err = parse("1,2\n3\n", &d).unwrap_err().to_string();
        assert!(err.contains("row 2 has 1 fields"), "{err}");
        let err = parse("1,2\n3,x\n", &d).unwrap_err().to_string();
        assert!(err.contains("row 2, column 2: 'x'"), "{err}");
        let err = parse("1,2\n3,inf\n", &d).unwrap_err().to_string();
        assert!(err.contains("non-finite"), "{err}");
        assert!(parse("", &d).is_err());
        assert!(
            parse("a,b\n", &d)
                .unwrap_err()
                .to_string()
                .contains("no data rows")
        );
    }

    #[test]
    fn transforms_fit_on_one_split_and_invert() {
        let x = Mat::from_fn(4, 2, |i, j| (i * (j + 1)) as f64 + j as f64);
        let names = default_names(2);
        for kind in [TransformKind::MinMax, TransformKind::Standardize] {
            let t = Transform::fit(kind, x.as_ref(), &names).unwrap();
            let z = t.apply(x.as_ref());
            let back = t.invert(z.as_ref());
            for i in 0..4 {
                for j in 0..2 {
                    assert!((back[(i, j)] - x[(i, j)]).abs() < 1e-12);
                }
            }
            if kind == TransformKind::MinMax {
                assert_eq!((z[(0, 0)], z[(3, 0)]), (0.0, 1.0));
            } else {
                let mean: f64 = (0..4).map(|i| z[(i, 1)]).sum::<f64>() / 4.0;
                let var: f64 = (0..4).map(|i| z[(i, 1)] * z[(i, 1)]).sum::<f64>() / 4.0;
                assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
            }
        }
        let constant = Mat::from_fn(3, 2, |i, j| if j == 1 { 7.0 } else { i as f64 });
        let err = Transform::fit(TransformKind::Standardize, constant.as_ref(), &names)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column x2 is constant") && err.contains('7'),
            "{err}"
        );
        let id = Transform::fit(TransformKind::None, constant.as_ref(), &names).unwrap();
        assert_eq!(id.apply(constant.as_ref()), constant);
        assert_eq!(id.log_scale(), 0.0);
    }

    #[test]
    fn written_csv_reads_back_exactly() {
        let dir = std::env::temp_dir().join(format!("helmholtz-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("draws.csv");
        let _ = std::fs::remove_file(&path);
        let x = Mat::from_fn(3, 2, |i, j| (i as f64 + 0.1) / (j as f64 + 3.0));
        let names = vec!["a".to_string(), "b".to_string()];
        write_csv(&path, &names, x.as_ref(), false).unwrap();
        assert!(write_csv(&path, &names, x.as_ref(), false).is_err());
        let t = read_table(&path, &TableOptions::default()).unwrap();
        assert_eq!(t.values, x);
        assert_eq!(t.columns, names);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
