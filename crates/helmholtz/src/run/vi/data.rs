//! The data of a vi run: features and labels from the user's files (a label column, or labels
//! in separate files), labels 0/1 or −1/+1 mapped to ±1, the transform fitted on the training
//! features, and the intercept.

use std::path::Path;

use faer::{Mat, MatRef};

use super::ViConfig;
use crate::data::table::{HeaderUse, Table, TableOptions, Transform, read_table};
use crate::error::{Error, Result};
use crate::models::logistic_regression::LogisticRegression;

/// The name of the constant-1 feature.
pub const INTERCEPT: &str = "intercept";

/// The training model (features, ±1 labels, prior), the held-out split and what was done to the
/// features.
pub struct ViData {
    /// Training features (transformed, intercept last) and labels, with the prior.
    pub model: LogisticRegression,
    /// Held-out features and ±1 labels, mapped as the training features were.
    pub test: Option<(Mat<f64>, Vec<f64>)>,
    /// One name per weight: the training file's columns, then `intercept`.
    pub features: Vec<String>,
    /// The transform of the file's feature columns.
    pub transform: Transform,
    /// Lines for the log (a header read from a CSV's first row).
    pub notes: Vec<String>,
}

/// Reads the training (and test) data of `config`.
pub fn load_data(config: &ViConfig) -> Result<ViData> {
    let d = &config.data;
    let options = TableOptions {
        header: d.header,
        delimiter: d.delimiter.map(|c| c as u8),
        label: d.label.clone(),
    };
    let mut notes = Vec::new();
    let train = read_split(&d.train, d.labels.as_deref(), &options, &mut notes)?;
    let test = match &d.test {
        None => None,
        Some(path) => Some(read_split(
            path,
            d.test_labels.as_deref(),
            &options,
            &mut notes,
        )?),
    };
    from_splits(config, train, test, notes)
}

/// The data of `config` given as arrays in memory rather than files: features `x` (n × d, one
/// point per row) and labels `y` (0/1 or −1/+1, one per row), and a held-out pair, checked as
/// files are; errors name them "X", "y", "X_test" and "y_test" (rows counted from 1).
pub fn load_arrays(
    config: &ViConfig,
    x: MatRef<'_, f64>,
    y: &[f64],
    test: Option<(MatRef<'_, f64>, &[f64])>,
) -> Result<ViData> {
    let split = |x: MatRef<'_, f64>, y: &[f64], names: [&str; 2]| -> Result<(Table, Vec<f64>)> {
        let table = Table::from_values(x, Path::new(names[0]))?;
        let labels = Table::from_values(
            MatRef::from_column_major_slice(y, y.len(), 1),
            Path::new(names[1]),
        )?;
        if y.len() != table.rows() {
            return Err(Error::format(
                names[1],
                format!(
                    "{} labels for the {} rows of {}",
                    y.len(),
                    table.rows(),
                    names[0]
                ),
            ));
        }
        Ok((table, signed_labels(y, &labels)?))
    };
    let train = split(x, y, ["X", "y"])?;
    let test = test
        .map(|(x, y)| split(x, y, ["X_test", "y_test"]))
        .transpose()?;
    from_splits(config, train, test, Vec::new())
}

/// The model and the held-out split from the tables read: the transform fitted on the
/// training features and applied to both, the intercept appended.
fn from_splits(
    config: &ViConfig,
    (train, train_labels): (Table, Vec<f64>),
    test: Option<(Table, Vec<f64>)>,
    notes: Vec<String>,
) -> Result<ViData> {
    let d = &config.data;
    let transform = Transform::fit(d.transform, train.values.as_ref(), &train.columns)?;
    let mut features = train.columns.clone();
    if d.intercept {
        features.push(INTERCEPT.to_string());
    }
    let model = LogisticRegression::new(
        design(train.values.as_ref(), &transform, d.intercept),
        train_labels,
    )?
    .with_prior_scale(config.model.prior_scale)?;
    let test = match test {
        None => None,
        Some((table, labels)) => {
            if table.columns.len() != train.columns.len() {
                return Err(Error::format(
                    &table.path,
                    format!(
                        "the test file has {} feature columns ({}), the training file {} ({})",
                        table.columns.len(),
                        table.columns.join(", "),
                        train.columns.len(),
                        train.columns.join(", ")
                    ),
                ));
            }
            Some((
                design(table.values.as_ref(), &transform, d.intercept),
                labels,
            ))
        }
    };
    Ok(ViData {
        model,
        test,
        features,
        transform,
        notes,
    })
}

/// The design matrix of feature rows `values`: `transform` applied, then a constant-1 column
/// when `intercept`.
pub fn design(values: MatRef<'_, f64>, transform: &Transform, intercept: bool) -> Mat<f64> {
    let mapped = transform.apply(values);
    let width = mapped.ncols() + usize::from(intercept);
    Mat::from_fn(mapped.nrows(), width, |i, j| {
        if j < mapped.ncols() {
            mapped[(i, j)]
        } else {
            1.0
        }
    })
}

/// One split: the feature table and its ±1 labels, from the label column or a labels file.
fn read_split(
    path: &Path,
    labels_file: Option<&Path>,
    options: &TableOptions,
    notes: &mut Vec<String>,
) -> Result<(Table, Vec<f64>)> {
    let table = read_table(path, options)?;
    notes.extend(table.header_note());
    let labels = match (&table.labels, labels_file) {
        (Some(labels), _) => signed_labels(labels, &table)?,
        (None, Some(file)) => {
            let label_options = TableOptions {
                label: None,
                ..options.clone()
            };
            let column = read_table(file, &label_options)?;
            notes.extend(column.header_note());
            if column.values.ncols() != 1 {
                return Err(Error::format(
                    file,
                    format!(
                        "a labels file holds one column, this one {} ({})",
                        column.values.ncols(),
                        column.columns.join(", ")
                    ),
                ));
            }
            if column.rows() != table.rows() {
                return Err(Error::format(
                    file,
                    format!(
                        "{} labels for the {} rows of {}",
                        column.rows(),
                        table.rows(),
                        path.display()
                    ),
                ));
            }
            let values: Vec<f64> = (0..column.rows()).map(|i| column.values[(i, 0)]).collect();
            signed_labels(&values, &column)?
        }
        (None, None) => {
            return Err(Error::Config(
                "the labels are missing: set data.label or data.labels".into(),
            ));
        }
    };
    Ok((table, labels))
}

/// Labels 0/1 or −1/+1 as ±1; another value is an error naming the file, the row and the value.
fn signed_labels(labels: &[f64], table: &Table) -> Result<Vec<f64>> {
    let header_rows = usize::from(matches!(
        table.header,
        HeaderUse::Given | HeaderUse::Detected
    ));
    let has_zero = labels.contains(&0.0);
    let has_minus_one = labels.contains(&-1.0);
    labels
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let mixed = (v == 0.0 && has_minus_one) || (v == -1.0 && has_zero);
            if (v == 0.0 || v == 1.0 || v == -1.0) && !mixed {
                Ok(if v == 1.0 { 1.0 } else { -1.0 })
            } else {
                let what = if mixed {
                    "mixes 0 and −1 labels".to_string()
                } else {
                    format!("label {v} is not a class")
                };
                Err(Error::format(
                    &table.path,
                    format!(
                        "row {} (data row {}): {what}; labels are 0/1 or −1/+1",
                        i + 1 + header_rows,
                        i + 1
                    ),
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::table::parse_table;

    /// 0/1 and −1/+1 both map to ±1; a 2, or 0 beside −1, is refused naming its row.
    #[test]
    fn labels_map_to_signs_and_bad_ones_name_their_row() {
        let table =
            parse_table(b"y\n0\n1\n", Path::new("y.csv"), &TableOptions::default()).unwrap();
        assert_eq!(
            signed_labels(&[0.0, 1.0, 1.0], &table).unwrap(),
            vec![-1.0, 1.0, 1.0]
        );
        assert_eq!(
            signed_labels(&[-1.0, 1.0], &table).unwrap(),
            vec![-1.0, 1.0]
        );
        let err = signed_labels(&[0.0, 2.0], &table).unwrap_err().to_string();
        assert!(err.contains("y.csv: row 3 (data row 2): label 2"), "{err}");
        let err = signed_labels(&[0.0, -1.0], &table).unwrap_err().to_string();
        assert!(err.contains("mixes 0 and −1"), "{err}");
    }
}
