//! Numeric CSV files (plain or gzip-compressed): one sample per row.

use std::path::Path;

use faer::Mat;

use super::Dataset;
use super::idx::read_maybe_gzip;
use crate::error::{Error, Result};

/// Reads a numeric CSV file, plain or gzip-compressed (detected from its first two bytes).
///
/// Each row is one sample. `label_column` (0-based), if given, holds a non-negative integer class
/// label and is removed from the features; every other cell is a feature, multiplied by `scale`
/// (e.g. `1.0 / 255.0` for 8-bit pixels). A first row that does not parse as numbers is taken to be
/// a header and skipped; no other header detection is done. Cells are trimmed of spaces.
///
/// Errors name the row (1-based line number) and column (1-based) for ragged rows, non-numeric
/// cells, labels that are not non-negative integers, and NaN or infinite values.
pub fn read_csv(path: &Path, label_column: Option<usize>, scale: f32) -> Result<Dataset> {
    let bytes = read_maybe_gzip(path)?;
    parse_csv(&bytes, path, label_column, scale)
}

/// Parses CSV text already in memory, as [`read_csv`] does; `path` only labels errors.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    label_column: Option<usize>,
    scale: f32,
) -> Result<Dataset> {
    if !scale.is_finite() {
        return Err(Error::Config(format!(
            "CSV scale must be finite, got {scale}"
        )));
    }
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(bytes);

    let mut n_columns: Option<usize> = None;
    let mut values: Vec<f32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut n_rows = 0usize;
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::format(path, format!("CSV: {e}")))?;
        let row = record.position().map_or(index + 1, |p| p.line() as usize);
        if index == 0 && record.iter().any(|cell| cell.parse::<f64>().is_err()) {
            continue; // a header row
        }
        match n_columns {
            None => {
                if let Some(label) = label_column
                    && label >= record.len()
                {
                    return Err(Error::format(
                        path,
                        format!(
                            "label column {} (1-based) does not exist: row {row} has {} columns",
                            label + 1,
                            record.len()
                        ),
                    ));
                }
                n_columns = Some(record.len());
            }
            Some(expected) if expected != record.len() => {
                return Err(Error::format(
                    path,
                    format!(
                        "ragged rows: row {row} has {} columns, earlier rows have {expected}",
                        record.len()
                    ),
                ));
            }
            Some(_) => {}
        }
        for (col, cell) in record.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| {
                Error::format(
                    path,
                    format!("row {row}, column {}: '{cell}' is not a number", col + 1),
                )
            })?;
            if !value.is_finite() {
                return Err(Error::format(
                    path,
                    format!("row {row}, column {}: non-finite value '{cell}'", col + 1),
                ));
            }
            if Some(col) == label_column {
                if value < 0.0 || value.fract() != 0.0 || value > f64::from(u32::MAX) {
                    return Err(Error::format(
                        path,
                        format!(
                            "row {row}, column {}: label '{cell}' is not a non-negative integer",
                            col + 1
                        ),
                    ));
                }
                labels.push(value as u32);
            } else {
                let scaled = value as f32 * scale;
                if !scaled.is_finite() {
                    return Err(Error::format(
                        path,
                        format!(
                            "row {row}, column {}: value '{cell}' times scale {scale} is not finite in f32",
                            col + 1
                        ),
                    ));
                }
                values.push(scaled);
            }
        }
        n_rows += 1;
    }
    let Some(n_columns) = n_columns else {
        return Err(Error::format(path, "CSV file has no data rows"));
    };
    let dim = n_columns - usize::from(label_column.is_some());
    let x = Mat::from_fn(dim, n_rows, |i, j| values[j * dim + i]);
    Ok(Dataset {
        x,
        labels: label_column.map(|_| labels),
        image_shape: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;
    use std::io::Write;

    fn message(err: Error) -> String {
        match err {
            Error::Format { message, .. } => message,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    fn parse(text: &str, label: Option<usize>) -> Result<Dataset> {
        parse_csv(text.as_bytes(), Path::new("t.csv"), label, 0.5)
    }

    #[test]
    fn reads_values_labels_and_skips_a_header() {
        let ds = parse("a, b, label\n1, 2, 3\n4,6,0\n", Some(2)).unwrap();
        assert_eq!((ds.dim(), ds.n_samples()), (2, 2));
        assert_eq!(ds.labels, Some(vec![3, 0]));
        assert_eq!(
            [ds.x[(0, 0)], ds.x[(1, 0)], ds.x[(0, 1)], ds.x[(1, 1)]],
            [0.5, 1.0, 2.0, 3.0]
        );
        let ds = parse("1,2\n3,4\n", None).unwrap();
        assert_eq!((ds.dim(), ds.n_samples(), ds.labels), (2, 2, None));
        // The label column may be first.
        let ds = parse("7,1,2\n", Some(0)).unwrap();
        assert_eq!((ds.labels, ds.x[(1, 0)]), (Some(vec![7]), 1.0));
    }

    #[test]
    fn reads_plain_and_gzip_files() {
        let dir = temp_dir("csv-files");
        let text = "x1,x2,y\n0,255,1\n51,102,2\n";
        let plain = dir.join("plain.csv");
        let gz = dir.join("data.csv.gz");
        std::fs::write(&plain, text).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
        for path in [&plain, &gz] {
            let ds = read_csv(path, Some(2), 1.0 / 255.0).unwrap();
            assert_eq!(ds.labels, Some(vec![1, 2]));
            assert_eq!(ds.x[(1, 0)], 1.0);
            assert!((ds.x[(0, 1)] - 0.2).abs() < 1e-6);
        }
        assert!(matches!(
            read_csv(&dir.join("none.csv"), None, 1.0),
            Err(Error::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_row_and_column() {
        let msg = message(parse("1,2,3\n4,5\n", None).unwrap_err());
        assert!(msg.contains("ragged") && msg.contains("row 2"), "{msg}");
        let msg = message(parse("1,2,3\n4,x,6\n", None).unwrap_err());
        assert!(
            msg.contains("row 2, column 2") && msg.contains("'x'"),
            "{msg}"
        );
        let msg = message(parse("1,2\n3,NaN\n", None).unwrap_err());
        assert!(
            msg.contains("row 2, column 2") && msg.contains("non-finite"),
            "{msg}"
        );
        let msg = message(parse("1,2\ninf,1\n", None).unwrap_err());
        assert!(
            msg.contains("row 2, column 1") && msg.contains("non-finite"),
            "{msg}"
        );
        let msg = message(parse("1,2.5\n", Some(1)).unwrap_err());
        assert!(msg.contains("label '2.5'"), "{msg}");
        let msg = message(parse("1,2\n", Some(5)).unwrap_err());
        assert!(msg.contains("label column 6"), "{msg}");
        let msg = message(parse("header,only\n", None).unwrap_err());
        assert!(msg.contains("no data rows"), "{msg}");
        assert!(matches!(
            parse_csv(b"1\n", Path::new("t"), None, f32::NAN),
            Err(Error::Config(_))
        ));
    }
}
