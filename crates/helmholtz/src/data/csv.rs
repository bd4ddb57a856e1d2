//! Numeric CSV files (plain or gzip-compressed): one sample per row.

use std::path::Path;

use faer::Mat;

use super::Dataset;
use super::idx::read_maybe_gzip;
use crate::error::{Error, Result};

/// How a CSV file is read.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// Whether the first row is a header: `Some(true)` skips it, `Some(false)` reads it as data,
    /// `None` decides from the row: a header if none of its fields is a number, data if all
    /// are, and an error naming row 1 otherwise.
    pub header: Option<bool>,
    /// The field delimiter (an ASCII character; `,` by default, `\t` for tab-separated files).
    pub delimiter: u8,
    /// A column (0-based) of non-negative integer class labels, removed from the features.
    pub label_column: Option<usize>,
    /// Every feature is multiplied by this (e.g. `1.0 / 255.0` for 8-bit pixels).
    pub scale: f32,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: None,
            delimiter: b',',
            label_column: None,
            scale: 1.0,
        }
    }
}

/// The CSV reader every table of this crate is read with: no header handling (the first row
/// is decided by [`first_row`]), rows of any width (checked by the caller), cells trimmed.
pub(crate) fn reader(bytes: &[u8], delimiter: u8) -> ::csv::Reader<&[u8]> {
    ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .trim(::csv::Trim::All)
        .from_reader(bytes)
}

/// What a file's first row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FirstRow<'a> {
    /// A header: said so, or, unsaid, none of its fields is a number.
    Header,
    /// Data: said so, or, unsaid, every field is a number.
    Data,
    /// Unsaid, and it mixes numbers and words: `cell` (0-based `column`) is the first word.
    Mixed { column: usize, cell: &'a str },
}

/// The header rule: `header` as given, or decided from the row when `None`.
pub(crate) fn first_row(record: &::csv::StringRecord, header: Option<bool>) -> FirstRow<'_> {
    match header {
        Some(true) => FirstRow::Header,
        Some(false) => FirstRow::Data,
        None => {
            let mut words = record
                .iter()
                .enumerate()
                .filter(|(_, c)| c.parse::<f64>().is_err());
            match words.next() {
                None => FirstRow::Data,
                Some(_) if words.count() + 1 == record.len() => FirstRow::Header,
                Some((column, cell)) => FirstRow::Mixed { column, cell },
            }
        }
    }
}

/// The error of a first row that mixes numbers and words.
pub(crate) fn mixed_first_row(path: &Path, row: usize, column: usize, cell: &str) -> Error {
    Error::format(
        path,
        format!(
            "row {row}, column {}: '{cell}' is not a number, but other fields of row {row} are: a header has no numbers and a data row only numbers (set data.header = true or false to say which it is)",
            column + 1
        ),
    )
}

/// A cell as a finite number; an error naming its row and (0-based) column otherwise.
pub(crate) fn number(cell: &str, path: &Path, row: usize, column: usize) -> Result<f64> {
    let value: f64 = cell.parse().map_err(|_| {
        Error::format(
            path,
            format!("row {row}, column {}: '{cell}' is not a number", column + 1),
        )
    })?;
    if !value.is_finite() {
        return Err(Error::format(
            path,
            format!(
                "row {row}, column {}: non-finite value '{cell}'",
                column + 1
            ),
        ));
    }
    Ok(value)
}

/// Reads a numeric CSV file, plain or gzip-compressed (detected from its first two bytes), with
/// a comma delimiter and the header decided from the first row (see [`CsvOptions`]).
///
/// Each row is one sample. `label_column` (0-based), if given, holds a non-negative integer class
/// label and is removed from the features; every other cell is a feature, multiplied by `scale`
/// (e.g. `1.0 / 255.0` for 8-bit pixels). Cells are trimmed of spaces.
///
/// Errors name the row (1-based line number) and column (1-based) for ragged rows, non-numeric
/// cells, labels that are not non-negative integers, and NaN or infinite values.
pub fn read_csv(path: &Path, label_column: Option<usize>, scale: f32) -> Result<Dataset> {
    let options = CsvOptions {
        label_column,
        scale,
        ..CsvOptions::default()
    };
    read_csv_with(path, &options)
}

/// The note to log when `options.header` is unset and the file's first row is read as a header
/// (none of its fields is a number): the file and the names found. None when the header was
/// given, or the first row is data, or the file cannot be read (reading it reports that).
pub fn detected_header_note(path: &Path, options: &CsvOptions) -> Option<String> {
    if options.header.is_some() {
        return None;
    }
    let bytes = read_maybe_gzip(path).ok()?;
    let mut reader = reader(bytes.as_slice(), options.delimiter);
    let record = reader.records().next()?.ok()?;
    if first_row(&record, None) != FirstRow::Header {
        return None;
    }
    let names: Vec<&str> = record.iter().collect();
    Some(format!(
        "{}: row 1 read as a header ({}) because none of its fields is a number; set data.header = false to read it as data",
        path.display(),
        names.join(", ")
    ))
}

/// The names in the header row of a CSV file read with `options` (empty when its first row is
/// data: `options.header` false, or unset and the row holds numbers).
pub fn header_names(path: &Path, options: &CsvOptions) -> Result<Vec<String>> {
    let bytes = read_maybe_gzip(path)?;
    let mut reader = reader(bytes.as_slice(), options.delimiter);
    let Some(record) = reader.records().next() else {
        return Ok(Vec::new());
    };
    let record = record.map_err(|e| Error::format(path, format!("CSV: {e}")))?;
    Ok(if first_row(&record, options.header) == FirstRow::Header {
        record.iter().map(str::to_string).collect()
    } else {
        Vec::new()
    })
}

/// Reads a numeric CSV file as `options` say.
pub fn read_csv_with(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let bytes = read_maybe_gzip(path)?;
    parse_csv_with(&bytes, path, options)
}

/// Parses CSV text already in memory, as [`read_csv`] does; `path` only labels errors.
pub fn parse_csv(
    bytes: &[u8],
    path: &Path,
    label_column: Option<usize>,
    scale: f32,
) -> Result<Dataset> {
    let options = CsvOptions {
        label_column,
        scale,
        ..CsvOptions::default()
    };
    parse_csv_with(bytes, path, &options)
}

/// Parses CSV text already in memory as `options` say; `path` only labels errors.
pub fn parse_csv_with(bytes: &[u8], path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let (label_column, scale) = (options.label_column, options.scale);
    if !scale.is_finite() {
        return Err(Error::Config(format!(
            "CSV scale must be finite, got {scale}"
        )));
    }
    let mut reader = reader(bytes, options.delimiter);

    let mut n_columns: Option<usize> = None;
    let mut values: Vec<f32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut n_rows = 0usize;
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::format(path, format!("CSV: {e}")))?;
        let row = record.position().map_or(index + 1, |p| p.line() as usize);
        if index == 0 {
            match first_row(&record, options.header) {
                FirstRow::Header => continue,
                FirstRow::Mixed { column, cell } => {
                    return Err(mixed_first_row(path, row, column, cell));
                }
                FirstRow::Data => {}
            }
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
            let value = number(cell, path, row, col)?;
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
    fn the_header_is_decided_by_the_first_row_or_said_and_delimiters_are_options() {
        // A first row with a number and a word is neither: an error naming row 1, not a dropped row.
        let msg = message(parse("1,oops\n3,4\n", None).unwrap_err());
        assert!(
            msg.contains("row 1, column 2") && msg.contains("'oops'"),
            "{msg}"
        );
        assert!(msg.contains("data.header"), "{msg}");
        let with = |header, delimiter, text: &str| {
            let options = CsvOptions {
                header,
                delimiter,
                ..CsvOptions::default()
            };
            parse_csv_with(text.as_bytes(), Path::new("t.csv"), &options)
        };
        // A numeric first row that is a header (column names 1, 2) is skipped when said so.
        let ds = with(Some(true), b',', "1,2\n3,4\n").unwrap();
        assert_eq!((ds.n_samples(), ds.x[(0, 0)]), (1, 3.0));
        // A header said to be absent is data, and a word in it is an error naming row 1.
        assert_eq!(
            with(Some(false), b',', "1,2\n3,4\n").unwrap().n_samples(),
            2
        );
        let msg = message(with(Some(false), b',', "a,b\n3,4\n").unwrap_err());
        assert!(msg.contains("row 1, column 1"), "{msg}");
        // Tab- and semicolon-separated files.
        let ds = with(None, b'\t', "x\ty\n1\t2\n3\t4\n").unwrap();
        assert_eq!((ds.dim(), ds.n_samples(), ds.x[(1, 1)]), (2, 2, 4.0));
        let ds = with(None, b';', "1;2.5\n").unwrap();
        assert_eq!(ds.x[(1, 0)], 2.5);
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
