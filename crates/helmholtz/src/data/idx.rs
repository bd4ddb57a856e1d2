//! The IDX file format (MNIST, Fashion-MNIST), raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, an element-type code and the number of
//! dimensions — followed by each dimension as a big-endian `u32`, then the elements in row-major
//! order. Only the unsigned-byte element type (code `0x08`) is read, which is what every MNIST-style
//! file uses: magic `0x00000801` for a label vector and `0x00000803` for a stack of images.

use std::io::{Read, Write};
use std::path::Path;

use faer::Mat;

use super::Dataset;
use crate::error::{Error, Result};

/// The element-type code of unsigned bytes, the only type this reader accepts.
const UNSIGNED_BYTE: u8 = 0x08;

/// An n-dimensional array of unsigned bytes read from an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first (e.g. `[n_images, height, width]`).
    pub dims: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Decompresses `raw` when it starts with the gzip magic bytes `1f 8b`; returns it unchanged
/// otherwise. Concatenated gzip members are all decompressed.
pub fn gunzip_if_gzip(raw: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes `1f 8b`.
///
/// Use it for any file that may or may not be gzipped; the file name is not consulted.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    super::npy::check_file_memory(path)?;
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    gunzip_if_gzip(raw).map_err(|e| Error::format(path, format!("corrupt gzip data: {e}")))
}

/// The name of an IDX element-type code, for error messages.
fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown",
    }
}

/// Parses the bytes of an (already decompressed) IDX file; `path` only labels errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: the file has {} bytes, the magic number alone needs 4",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file: magic number 0x{magic:08x}, expected 0x000008NN \
                 (two zero bytes, type code 0x08, NN dimensions; 0x00000803 for images, \
                 0x00000801 for labels)"
            ),
        ));
    }
    let type_code = bytes[2];
    if type_code != UNSIGNED_BYTE {
        return Err(Error::format(
            path,
            format!(
                "unsupported IDX element type 0x{type_code:02x} ({}) in magic number 0x{magic:08x}; \
                 only unsigned bytes (0x08) are supported",
                type_name(type_code)
            ),
        ));
    }
    let n_dims = bytes[3] as usize;
    if n_dims == 0 {
        return Err(Error::format(
            path,
            format!("IDX magic number 0x{magic:08x} declares zero dimensions"),
        ));
    }
    let offset = 4 + 4 * n_dims;
    if bytes.len() < offset {
        return Err(Error::format(
            path,
            format!(
                "truncated IDX header: {n_dims} dimensions need {offset} header bytes, the file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = bytes[4..offset]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    // The bytes, then the f32 samples of a data set.
    crate::memory::check_allocation(
        &format!(
            "{} (dimensions {dims:?}, as its header says)",
            path.display()
        ),
        crate::memory::bytes_of(&dims, 1 + 4),
    )?;
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let found = bytes.len() - offset;
    if expected != Some(found) {
        let shape = dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("×");
        let needed = expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string());
        return Err(Error::format(
            path,
            format!(
                "IDX data length mismatch: dimensions {shape} need {needed} bytes after the header, \
                 the file has {found} (truncated or not an IDX file?)"
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[offset..].to_vec(),
    })
}

/// Reads an unsigned-byte IDX file, raw or gzip-compressed (detected from its first two bytes).
///
/// Errors, never panics, on a wrong magic number, an element type other than unsigned byte, a
/// truncated header, or data whose length does not match the dimensions.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    parse_idx(&bytes, path)
}

/// Writes an unsigned-byte IDX file, gzip-compressed when `gzip` is true.
///
/// Meant for test fixtures and small exports; `data.len()` must equal the product of `dims`.
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8], gzip: bool) -> Result<()> {
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if dims.is_empty() || dims.len() > 255 || expected != Some(data.len()) {
        return Err(Error::Dimension(format!(
            "IDX dims {dims:?} do not match {} data bytes (or there are not 1 to 255 dims)",
            data.len()
        )));
    }
    let mut bytes = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    bytes.extend_from_slice(&[0, 0, UNSIGNED_BYTE, dims.len() as u8]);
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::Dimension(format!("IDX dimension {d} does not fit in 32 bits")))?;
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let result = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        encoder
            .write_all(&bytes)
            .and_then(|()| encoder.finish().map(|_| ()))
    } else {
        let mut file = file;
        file.write_all(&bytes)
    };
    result.map_err(|e| Error::io(path, e))
}

/// Loads an IDX image stack (n × h × w) as a data set, with optional IDX labels (n).
///
/// Pixel values are scaled to [0, 1] as `value / 255`; each image becomes one column, stored
/// row-major, and `image_shape` is `(h, w)`. The label file must hold exactly one label per image.
pub fn load_idx_images(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let array = read_idx(images)?;
    let &[n, height, width] = array.dims.as_slice() else {
        return Err(Error::format(
            images,
            format!(
                "expected a 3-dimensional IDX image stack (n × height × width), found dimensions {:?}",
                array.dims
            ),
        ));
    };
    let dim = height * width;
    let data = &array.data;
    let x = Mat::from_fn(dim, n, |i, j| f32::from(data[j * dim + i]) / 255.0);
    let labels = match labels {
        None => None,
        Some(path) => {
            let label_array = read_idx(path)?;
            if label_array.dims.len() != 1 {
                return Err(Error::format(
                    path,
                    format!(
                        "expected a 1-dimensional IDX label vector, found dimensions {:?}",
                        label_array.dims
                    ),
                ));
            }
            if label_array.dims[0] != n {
                return Err(Error::format(
                    path,
                    format!(
                        "{} labels for {n} images in {}",
                        label_array.dims[0],
                        images.display()
                    ),
                ));
            }
            Some(label_array.data.iter().map(|&l| u32::from(l)).collect())
        }
    };
    Ok(Dataset {
        x,
        labels,
        image_shape: Some((height, width)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh, empty temporary directory unique to this test and process.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("helmholtz-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn format_message(err: Error) -> String {
        match err {
            Error::Format { message, .. } => message,
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        let dir = temp_dir("idx-round-trip");
        let (n, h, w) = (3, 2, 4);
        let pixels: Vec<u8> = (0..n * h * w).map(|k| (k * 11 % 256) as u8).collect();
        let labels = vec![7u8, 0, 9];
        for gzip in [false, true] {
            let images_path = dir.join(format!("images-{gzip}"));
            let labels_path = dir.join(format!("labels-{gzip}"));
            write_idx(&images_path, &[n, h, w], &pixels, gzip).unwrap();
            write_idx(&labels_path, &[n], &labels, gzip).unwrap();
            let raw = std::fs::read(&images_path).unwrap();
            assert_eq!(raw.starts_with(&[0x1f, 0x8b]), gzip);

            let array = read_idx(&images_path).unwrap();
            assert_eq!(
                array,
                IdxArray {
                    dims: vec![n, h, w],
                    data: pixels.clone()
                }
            );

            let ds = load_idx_images(&images_path, Some(&labels_path)).unwrap();
            assert_eq!((ds.dim(), ds.n_samples()), (h * w, n));
            assert_eq!(ds.image_shape, Some((h, w)));
            assert_eq!(ds.labels, Some(vec![7, 0, 9]));
            for j in 0..n {
                for r in 0..h {
                    for c in 0..w {
                        let expected = f32::from(pixels[j * h * w + r * w + c]) / 255.0;
                        assert_eq!(ds.x[(r * w + c, j)], expected);
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wrong_magic_names_found_and_expected() {
        let path = Path::new("fake");
        let msg =
            format_message(parse_idx(&[0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 0], path).unwrap_err());
        assert!(
            msg.contains("0x1f000801") && msg.contains("expected"),
            "{msg}"
        );
        let msg =
            format_message(parse_idx(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], path).unwrap_err());
        assert!(
            msg.contains("element type 0x0d") && msg.contains("32-bit float"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_header_and_length_mismatch_are_errors() {
        let path = Path::new("fake");
        let msg = format_message(parse_idx(&[0, 0], path).unwrap_err());
        assert!(msg.contains("truncated IDX header"), "{msg}");
        let msg = format_message(parse_idx(&[0, 0, 8, 3, 0, 0, 0, 2, 0, 0], path).unwrap_err());
        assert!(msg.contains("truncated IDX header"), "{msg}");
        // 2 × 2 needs 4 data bytes; give 3 and then 5.
        let header = [0u8, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        for extra in [3usize, 5] {
            let mut bytes = header.to_vec();
            bytes.extend(std::iter::repeat_n(1u8, extra));
            let msg = format_message(parse_idx(&bytes, path).unwrap_err());
            assert!(
                msg.contains("need 4 bytes") && msg.contains(&format!("has {extra}")),
                "{msg}"
            );
        }
        // Dimensions whose product overflows do not panic.
        let mut bytes = vec![0u8, 0, 8, 3];
        for _ in 0..3 {
            bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        }
        assert!(parse_idx(&bytes, path).is_err());
    }

    #[test]
    fn image_and_label_shape_errors() {
        let dir = temp_dir("idx-shapes");
        let images = dir.join("images");
        let labels = dir.join("labels");
        let flat = dir.join("flat");
        write_idx(&images, &[2, 2, 2], &[0; 8], false).unwrap();
        write_idx(&labels, &[3], &[1, 2, 3], true).unwrap();
        write_idx(&flat, &[2, 4], &[0; 8], false).unwrap();
        let msg = format_message(load_idx_images(&images, Some(&labels)).unwrap_err());
        assert!(msg.contains("3 labels for 2 images"), "{msg}");
        let msg = format_message(load_idx_images(&flat, None).unwrap_err());
        assert!(msg.contains("3-dimensional"), "{msg}");
        let msg = format_message(load_idx_images(&images, Some(&images)).unwrap_err());
        assert!(msg.contains("1-dimensional"), "{msg}");
        // A corrupt gzip stream is an error, not a panic.
        let corrupt = dir.join("corrupt");
        std::fs::write(&corrupt, [0x1f, 0x8b, 0x08, 0x00, 0x12]).unwrap();
        assert!(matches!(read_idx(&corrupt), Err(Error::Format { .. })));
        assert!(matches!(
            read_idx(&dir.join("missing")),
            Err(Error::Io { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
