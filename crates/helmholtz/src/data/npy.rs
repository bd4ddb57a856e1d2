//! NumPy arrays: `.npy` files (format versions 1, 2 and 3) and `.npz` archives (stored or
//! deflated members, as `numpy.savez` and `numpy.savez_compressed` write them).
//!
//! Numbers of every numeric dtype NumPy writes (`f2` excepted) are read in either byte order
//! and converted to f64; C and Fortran order are both accepted, and [`NpyArray::data`] is always
//! in C (row-major) order. A 2-D array of shape (n, d) is n samples of dimension d, as in
//! scikit-learn; [`NpyArray::to_dataset`] turns it into a [`Dataset`] (samples as columns).
//!
//! Every error names the file (and the archive member) and what is wrong: a bad magic string,
//! an unsupported dtype (object arrays, strings, complex numbers), a truncated body, a missing
//! member.
//!
//! ```
//! use helmholtz::data::npy::{NpyArray, parse_npy};
//! // A 2 × 3 little-endian f8 array written by hand as NumPy writes it.
//! let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
//! let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
//! let padded = format!("{header:<117}\n");
//! bytes.extend((padded.len() as u16).to_le_bytes());
//! bytes.extend(padded.as_bytes());
//! for v in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
//!     bytes.extend(v.to_le_bytes());
//! }
//! let array = parse_npy(&bytes, "x.npy".as_ref())?;
//! assert_eq!(array.shape, vec![2, 3]);
//! let data = array.to_dataset("x.npy".as_ref(), 1.0)?;
//! assert_eq!((data.dim(), data.n_samples()), (3, 2));
//! assert_eq!(data.x[(2, 1)], 6.0);
//! # Ok::<(), helmholtz::Error>(())
//! ```

use std::io::Read;
use std::path::Path;

use faer::{Mat, MatRef};

use super::Dataset;
use crate::error::{Error, Result};
use crate::memory::{bytes_of, check_allocation};

/// Refuses to read a file larger than the memory left (its length, from the file system).
pub(crate) fn check_file_memory(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => check_allocation(&format!("reading {}", path.display()), meta.len().into()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// An array read from a `.npy` file or an `.npz` member.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values in C (row-major) order.
    pub data: Vec<f64>,
}

/// The element types read, with their sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float(usize),
    Int(usize),
    Unsigned(usize),
    Bool,
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    check_file_memory(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a `.npy` file; `origin` names it in errors.
pub fn parse_npy(bytes: &[u8], origin: &Path) -> Result<NpyArray> {
    let bad = |message: String| Error::format(origin, format!("NPY: {message}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(
            "not a NumPy .npy file (it does not start with \\x93NUMPY)".into(),
        ));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("format version {v} is not one of 1, 2, 3"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("the header is truncated".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the header is not text".into()))?;
    let descr = quoted_value(header, "descr")
        .ok_or_else(|| bad(format!("no 'descr' in the header {:?}", header.trim_end())))?;
    let fortran = match after_key(header, "fortran_order").map(str::trim_start) {
        Some(rest) if rest.starts_with("True") => true,
        Some(rest) if rest.starts_with("False") => false,
        _ => return Err(bad("no 'fortran_order' in the header".into())),
    };
    let shape =
        parse_shape(header).ok_or_else(|| bad("no readable 'shape' in the header".into()))?;
    let (big_endian, kind) = parse_descr(descr).ok_or_else(|| {
        bad(format!(
            "dtype {descr:?} is not supported (accepted: floats f4/f8, signed and unsigned integers of 1 to 8 bytes, bool)"
        ))
    })?;
    let size = match kind {
        Kind::Float(s) | Kind::Int(s) | Kind::Unsigned(s) => s,
        Kind::Bool => 1,
    };
    // The values as f64, then as the f32 samples of a data set.
    check_allocation(
        &format!(
            "{} (shape {shape:?} of {descr}, as its header says)",
            origin.display()
        ),
        bytes_of(&shape, 8 + 4),
    )?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let body = &bytes[start + header_len..];
    if body.len() < count * size {
        return Err(bad(format!(
            "the data is truncated: shape {shape:?} of {descr} needs {} bytes, the file holds {}",
            count * size,
            body.len()
        )));
    }
    let mut values: Vec<f64> = body[..count * size]
        .chunks_exact(size)
        .map(|chunk| decode(chunk, kind, big_endian))
        .collect();
    if fortran && shape.len() > 1 {
        values = fortran_to_c(&values, &shape);
    }
    Ok(NpyArray {
        shape,
        data: values,
    })
}

/// The bytes of a version-1 `.npy` file holding `values` (n × d) as a little-endian float64
/// array of shape (n, d) in C order, as `np.save` writes it (the header padded so the data
/// starts on a 64-byte boundary).
pub fn npy_bytes(values: MatRef<'_, f64>) -> Vec<u8> {
    let (n, d) = (values.nrows(), values.ncols());
    let mut out = npy_header("<f8", n, d, 8);
    for i in 0..n {
        for j in 0..d {
            out.extend(values[(i, j)].to_le_bytes());
        }
    }
    out
}

/// The version-1 header of an `.npy` file of `descr` and shape (n, d), C order, padded to 64
/// bytes, in a buffer with room for the data (`item` bytes a value).
fn npy_header(descr: &str, n: usize, d: usize, item: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + item * n * d);
    out.extend(b"\x93NUMPY\x01\x00");
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out
}

/// The bytes of a float32 `.npy` file of shape (n, d), C order, holding the columns of `points`
/// (d × n, one point per column): each column is one row of the file.
pub fn npy_bytes_f32(points: MatRef<'_, f32>) -> Vec<u8> {
    let (d, n) = (points.nrows(), points.ncols());
    let mut out = npy_header("<f4", n, d, 4);
    for j in 0..n {
        for i in 0..d {
            out.extend(points[(i, j)].to_le_bytes());
        }
    }
    out
}

/// Writes `values` (n × d) as a `.npy` file ([`npy_bytes`]) to `path`, which must not exist
/// unless `force`.
pub fn write_npy(path: &Path, values: MatRef<'_, f64>, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::Config(format!(
            "{} exists; pass --force to overwrite it",
            path.display()
        )));
    }
    std::fs::write(path, npy_bytes(values)).map_err(|e| Error::io(path, e))
}

/// Reads every member of an `.npz` archive, in archive order, named as NumPy names them (the
/// member's file name without `.npy`: `arr_0`, or the keyword given to `savez`).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>> {
    check_file_memory(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_npz(&bytes, path)
}

/// Parses the bytes of an `.npz` archive; `origin` names it in errors.
pub fn parse_npz(bytes: &[u8], origin: &Path) -> Result<Vec<(String, NpyArray)>> {
    let bad = |message: String| Error::format(origin, format!("NPZ: {message}"));
    let u16_at = |at: usize| -> Result<usize> {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .ok_or_else(|| bad("the archive is truncated".into()))
    };
    let u32_at = |at: usize| -> Result<usize> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad("the archive is truncated".into()))
    };
    // The end-of-central-directory record: the last "PK\x05\x06" (a comment may follow it).
    let end = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(|| bad("not a zip archive (no end-of-central-directory record)".into()))?;
    let entries = u16_at(end + 10)?;
    let mut at = u32_at(end + 16)?;
    let mut out = Vec::with_capacity(entries);
    for _ in 0..entries {
        if bytes.get(at..at + 4) != Some(b"PK\x01\x02".as_slice()) {
            return Err(bad("a central-directory entry is corrupt".into()));
        }
        let method = u16_at(at + 10)?;
        let (compressed, size) = (u32_at(at + 20)?, u32_at(at + 24)?);
        let (name_len, extra_len, comment_len) =
            (u16_at(at + 28)?, u16_at(at + 30)?, u16_at(at + 32)?);
        let local = u32_at(at + 42)?;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(|| bad("the archive is truncated".into()))?;
        at += 46 + name_len + extra_len + comment_len;
        if compressed == 0xFFFF_FFFF || size == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            return Err(bad(format!(
                "member {name} is over 4 GiB (ZIP64 sizes are not read); save it as .npy"
            )));
        }
        if bytes.get(local..local + 4) != Some(b"PK\x03\x04".as_slice()) {
            return Err(bad(format!("the local header of member {name} is corrupt")));
        }
        let data_at = local + 30 + u16_at(local + 26)? + u16_at(local + 28)?;
        let raw = bytes
            .get(data_at..data_at + compressed)
            .ok_or_else(|| bad(format!("member {name} is truncated")))?;
        let member = match method {
            0 => raw.to_vec(),
            8 => {
                check_allocation(
                    &format!(
                        "{} (member {name}, {size} bytes inflated)",
                        origin.display()
                    ),
                    size as u128,
                )?;
                let mut inflated = Vec::with_capacity(size);
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut inflated)
                    .map_err(|e| bad(format!("member {name} does not inflate: {e}")))?;
                inflated
            }
            m => {
                return Err(bad(format!(
                    "member {name} uses compression method {m} (accepted: stored, deflate)"
                )));
            }
        };
        let label = origin.join(&name);
        let array = parse_npy(&member, &label)?;
        out.push((name.trim_end_matches(".npy").to_string(), array));
    }
    Ok(out)
}

/// The member `name` of an `.npz` archive, or its only member when `name` is None.
pub fn read_npz_member(path: &Path, name: Option<&str>) -> Result<NpyArray> {
    let members = read_npz(path)?;
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let index = match name {
        Some(name) => names.iter().position(|n| *n == name).ok_or_else(|| {
            Error::format(
                path,
                format!("NPZ: no member {name:?} (the archive holds {names:?})"),
            )
        })?,
        None if members.len() == 1 => 0,
        None => {
            return Err(Error::format(
                path,
                format!("NPZ: the archive holds {names:?}; say which member to read"),
            ));
        }
    };
    Ok(members
        .into_iter()
        .nth(index)
        .map(|(_, a)| a)
        .unwrap_or_else(|| NpyArray {
            shape: Vec::new(),
            data: Vec::new(),
        }))
}

/// A data set from a `.npy` file, or from an `.npz` archive's only member (or its member `x`),
/// as [`NpyArray::to_dataset`] makes it.
pub fn read_dataset(path: &Path, scale: f32) -> Result<Dataset> {
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    let array = if is_npz {
        let members = read_npz(path)?;
        let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
        let index = if members.len() == 1 {
            0
        } else {
            names.iter().position(|n| n == "x").ok_or_else(|| {
                Error::format(
                    path,
                    format!(
                        "NPZ: the archive holds {names:?}; a data set is its only member or the one named \"x\""
                    ),
                )
            })?
        };
        members
            .into_iter()
            .nth(index)
            .map(|(_, a)| a)
            .ok_or_else(|| Error::format(path, "NPZ: the archive holds no arrays"))?
    } else {
        read_npy(path)?
    };
    array.to_dataset(path, scale)
}

impl NpyArray {
    /// The array as a data set: shape (n, d) is n samples of dimension d, shape (n,) is n
    /// samples of dimension 1. Values are multiplied by `scale`; a NaN or infinite value is an
    /// error naming its row and column (1-based), as is any other number of dimensions.
    pub fn to_dataset(&self, origin: &Path, scale: f32) -> Result<Dataset> {
        let (n, d) = match self.shape.as_slice() {
            [n] => (*n, 1),
            [n, d] => (*n, *d),
            other => {
                return Err(Error::format(
                    origin,
                    format!(
                        "NPY: an array of shape {other:?} is not a data set (accepted: (n, d) for n samples of dimension d, or (n,))"
                    ),
                ));
            }
        };
        if n == 0 || d == 0 {
            return Err(Error::format(
                origin,
                format!("NPY: the array of shape {:?} holds no samples", self.shape),
            ));
        }
        if let Some(k) = self.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(
                origin,
                format!(
                    "NPY: row {}, column {} is {} (every value must be finite)",
                    k / d + 1,
                    k % d + 1,
                    self.data[k]
                ),
            ));
        }
        let x = Mat::from_fn(d, n, |i, j| self.data[j * d + i] as f32 * scale);
        Ok(Dataset::new(x))
    }
}

fn decode(chunk: &[u8], kind: Kind, big_endian: bool) -> f64 {
    let mut b = [0u8; 8];
    let s = chunk.len();
    if big_endian {
        for (k, &byte) in chunk.iter().rev().enumerate() {
            b[k] = byte;
        }
    } else {
        b[..s].copy_from_slice(chunk);
    }
    match kind {
        Kind::Float(4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        Kind::Float(_) => f64::from_le_bytes(b),
        Kind::Unsigned(_) => u64::from_le_bytes(b) as f64,
        Kind::Int(size) => {
            // Sign-extend from `size` bytes.
            let shift = 64 - 8 * size as u32;
            ((u64::from_le_bytes(b) << shift) as i64 >> shift) as f64
        }
        Kind::Bool => (b[0] != 0) as u8 as f64,
    }
}

fn parse_descr(descr: &str) -> Option<(bool, Kind)> {
    let (order, code) = match descr.chars().next()? {
        c @ ('<' | '>' | '|' | '=') => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let big = order == '>';
    let (letter, size) = code.split_at(1);
    let size: usize = size.parse().ok()?;
    let kind = match (letter, size) {
        ("f", 4 | 8) => Kind::Float(size),
        ("i", 1 | 2 | 4 | 8) => Kind::Int(size),
        ("u", 1 | 2 | 4 | 8) => Kind::Unsigned(size),
        ("b", 1) => Kind::Bool,
        _ => return None,
    };
    Some((big, kind))
}

/// The text after `'key':` in the header dict.
fn after_key<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))?;
    let rest = &header[at + key.len() + 2..];
    rest.trim_start().strip_prefix(':')
}

/// The quoted string value of `key`.
fn quoted_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let rest = after_key(header, key)?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    Some(&rest[..rest.find(quote)?])
}

/// The tuple of `shape`.
fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let rest = after_key(header, "shape")?.trim_start().strip_prefix('(')?;
    let inside = &rest[..rest.find(')')?];
    inside
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse().ok())
        .collect()
}

/// Fortran-order values of an array of `shape` in C order.
fn fortran_to_c(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = values.len();
    let mut out = vec![0.0; n];
    let mut index = vec![0usize; shape.len()];
    for value in values {
        // `index` walks the array in Fortran order (first axis fastest).
        let c = index.iter().zip(shape).fold(0, |acc, (&i, &s)| acc * s + i);
        out[c] = *value;
        for (axis, i) in index.iter_mut().enumerate() {
            *i += 1;
            if *i < shape[axis] {
                break;
            }
            *i = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn written_arrays_read_back_exactly_and_are_not_overwritten() {
        let values = Mat::from_fn(3, 2, |i, j| (i as f64 - 1.0) / 3.0 + j as f64 * 1e300);
        let bytes = npy_bytes(values.as_ref());
        assert_eq!((bytes.len() - 6 * 8) % 64, 0, "data on a 64-byte boundary");
        let array = parse_npy(&bytes, Path::new("w.npy")).unwrap();
        assert_eq!(array.shape, vec![3, 2]);
        let back: Vec<f64> = (0..3)
            .flat_map(|i| [values[(i, 0)], values[(i, 1)]])
            .collect();
        assert_eq!(array.data, back);
        let path = std::env::temp_dir().join(format!("hh-npy-write-{}.npy", std::process::id()));
        let _ = std::fs::remove_file(&path);
        write_npy(&path, values.as_ref(), false).unwrap();
        let err = write_npy(&path, values.as_ref(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exists") && err.contains("--force"), "{err}");
        write_npy(&path, values.as_ref(), true).unwrap();
        assert_eq!(read_npy(&path).unwrap(), array);
        std::fs::remove_file(&path).unwrap();
    }

    /// A `.npy` file as NumPy writes it (version 1, header padded to 64 bytes).
    fn npy(descr: &str, fortran: bool, shape: &[usize], body: &[u8]) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
        let tuple = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        let order = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(body);
        out
    }

    /// A zip archive of `members` (stored or deflated), laid out as Python's zipfile writes it.
    fn zip(members: &[(&str, Vec<u8>)], deflate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let body = if deflate {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            } else {
                data.clone()
            };
            let method: u16 = if deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            let mut common = Vec::new();
            common.extend(20u16.to_le_bytes()); // version needed
            common.extend(0u16.to_le_bytes()); // flags
            common.extend(method.to_le_bytes());
            common.extend([0u8; 8]); // time, date, crc (not checked)
            common.extend((body.len() as u32).to_le_bytes());
            common.extend((data.len() as u32).to_le_bytes());
            common.extend((name.len() as u16).to_le_bytes());
            common.extend(0u16.to_le_bytes()); // extra
            out.extend(b"PK\x03\x04");
            out.extend(&common);
            out.extend(name.as_bytes());
            out.extend(&body);
            central.extend(b"PK\x01\x02");
            central.extend(20u16.to_le_bytes()); // version made by
            central.extend(&common);
            central.extend([0u8; 10]); // comment length, disk, attributes
            central.extend(offset.to_le_bytes());
            central.extend(name.as_bytes());
        }
        let at = out.len() as u32;
        out.extend(&central);
        out.extend(b"PK\x05\x06");
        out.extend([0u8; 4]);
        out.extend((members.len() as u16).to_le_bytes());
        out.extend((members.len() as u16).to_le_bytes());
        out.extend((central.len() as u32).to_le_bytes());
        out.extend(at.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    fn f8(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn every_numeric_dtype_and_both_orders_and_byte_orders_read_the_same_values() {
        let origin = Path::new("x.npy");
        let c = parse_npy(
            &npy("<f8", false, &[2, 3], &f8(&[1., 2., 3., 4., 5., 6.])),
            origin,
        )
        .unwrap();
        assert_eq!(c.data, vec![1., 2., 3., 4., 5., 6.]);
        // The same array in Fortran order: columns first.
        let f = parse_npy(
            &npy("<f8", true, &[2, 3], &f8(&[1., 4., 2., 5., 3., 6.])),
            origin,
        )
        .unwrap();
        assert_eq!(f, c);
        let big: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy(">f4", false, &[2], &big), origin)
                .unwrap()
                .data,
            vec![1.5, -2.0]
        );
        let i2: Vec<u8> = [-3i16, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse_npy(&npy("<i2", false, &[2], &i2), origin)
                .unwrap()
                .data,
            vec![-3.0, 7.0]
        );
        let i8b: Vec<u8> = [-(1i64 << 40), 5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(
            parse_npy(&npy(">i8", false, &[2], &i8b), origin)
                .unwrap()
                .data,
            vec![-(2f64.powi(40)), 5.0]
        );
        assert_eq!(
            parse_npy(&npy("|u1", false, &[3], &[0, 128, 255]), origin)
                .unwrap()
                .data,
            vec![0.0, 128.0, 255.0]
        );
        assert_eq!(
            parse_npy(&npy("|b1", false, &[2], &[1, 0]), origin)
                .unwrap()
                .data,
            vec![1.0, 0.0]
        );
        // A 3-D Fortran array: element (i, j, k) of shape (2, 2, 2) is 100i + 10j + k.
        let mut fortran = Vec::new();
        for k in 0..2 {
            for j in 0..2 {
                for i in 0..2 {
                    fortran.push((100 * i + 10 * j + k) as f64);
                }
            }
        }
        let a = parse_npy(&npy("<f8", true, &[2, 2, 2], &f8(&fortran)), origin).unwrap();
        assert_eq!(a.data, vec![0., 1., 10., 11., 100., 101., 110., 111.]);
    }

    #[test]
    fn bad_files_are_errors_that_say_what_is_wrong() {
        let origin = Path::new("bad.npy");
        let message = |bytes: &[u8]| parse_npy(bytes, origin).unwrap_err().to_string();
        assert!(message(b"PK\x03\x04 not npy").contains("does not start with"));
        assert!(message(&npy("<c16", false, &[1], &[0; 16])).contains("not supported"));
        assert!(message(&npy("|O", false, &[1], &[0; 8])).contains("not supported"));
        assert!(message(&npy("<f8", false, &[3], &f8(&[1.0, 2.0]))).contains("truncated"));
        let m = message(&npy("<f8", false, &[3], &f8(&[1.0, 2.0])));
        assert!(m.contains("bad.npy"), "{m}");
        let nan = parse_npy(
            &npy("<f8", false, &[2, 2], &f8(&[1., 2., f64::NAN, 4.])),
            origin,
        )
        .unwrap();
        let m = nan.to_dataset(origin, 1.0).unwrap_err().to_string();
        assert!(m.contains("row 2, column 1"), "{m}");
        let cube = parse_npy(&npy("<f8", false, &[1, 1, 1], &f8(&[1.])), origin).unwrap();
        assert!(
            cube.to_dataset(origin, 1.0)
                .unwrap_err()
                .to_string()
                .contains("(n, d)")
        );
    }

    #[test]
    fn npz_archives_stored_or_deflated_give_their_members_by_name() {
        let x = npy("<f8", false, &[3, 2], &f8(&[1., 2., 3., 4., 5., 6.]));
        let y = npy("|u1", false, &[3], &[0, 1, 1]);
        for deflate in [false, true] {
            let bytes = zip(&[("x.npy", x.clone()), ("y.npy", y.clone())], deflate);
            let members = parse_npz(&bytes, Path::new("d.npz")).unwrap();
            let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["x", "y"]);
            assert_eq!(members[0].1.shape, vec![3, 2]);
            assert_eq!(members[1].1.data, vec![0.0, 1.0, 1.0]);
            let data = members[0].1.to_dataset(Path::new("d.npz"), 0.5).unwrap();
            assert_eq!((data.dim(), data.n_samples(), data.x[(1, 2)]), (2, 3, 3.0));
        }
        let dir = std::env::temp_dir().join(format!("helmholtz-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.npz");
        std::fs::write(&path, zip(&[("x.npy", x.clone()), ("y.npy", y)], true)).unwrap();
        assert_eq!(read_npz_member(&path, Some("x")).unwrap().shape, vec![3, 2]);
        let m = read_npz_member(&path, None).unwrap_err().to_string();
        assert!(m.contains("say which member") && m.contains("\"x\""), "{m}");
        let m = read_npz_member(&path, Some("z")).unwrap_err().to_string();
        assert!(m.contains("no member \"z\""), "{m}");
        std::fs::write(&path, b"not a zip at all, just some bytes").unwrap();
        assert!(
            read_npz(&path)
                .unwrap_err()
                .to_string()
                .contains("not a zip archive")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
