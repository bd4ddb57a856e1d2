//! PNG images as grayscale samples: one file, or a directory of same-sized files.

use std::path::{Path, PathBuf};

use faer::Mat;

use super::Dataset;
use crate::error::{Error, Result};

/// Rec. 709 (sRGB) luma weights for red, green and blue.
const LUMA_WEIGHTS: [f32; 3] = [0.2126, 0.7152, 0.0722];

/// Reads a PNG file as grayscale: `(height, width, values)` with `values` row-major in [0, 1].
///
/// 8- and 16-bit images are scaled by their maximum (255 or 65535). Colour images are converted
/// to luma `0.2126 R + 0.7152 G + 0.0722 B` on the stored (gamma-encoded) values, without
/// linearisation; an alpha channel is ignored.
pub fn read_png_gray(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::IoError(source) => Error::io(path, source),
        other => Error::format(path, format!("cannot decode as PNG: {other}")),
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let values = if image.color().has_color() {
        image
            .to_rgb32f()
            .pixels()
            .map(|p| LUMA_WEIGHTS[0] * p[0] + LUMA_WEIGHTS[1] * p[1] + LUMA_WEIGHTS[2] * p[2])
            .collect()
    } else {
        image.to_luma32f().into_raw()
    };
    Ok((height, width, values))
}

/// Loads every `*.png` file in `dir` (not recursive), sorted by file name, one sample per file.
///
/// All images must have the same size; the data set's `image_shape` is that `(height, width)` and
/// it has no labels. Values are as in [`read_png_gray`]. Errors if `dir` holds no PNG file or if a
/// file's size differs from the first one's (both files are named).
pub fn load_png_dir(dir: &Path) -> Result<Dataset> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let is_png = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let Some(first) = paths.first() else {
        return Err(Error::format(dir, "no *.png files in this directory"));
    };
    let (height, width, first_values) = read_png_gray(first)?;
    let dim = height * width;
    let mut x = Mat::<f32>::zeros(dim, paths.len());
    for (i, v) in first_values.into_iter().enumerate() {
        x[(i, 0)] = v;
    }
    for (j, path) in paths.iter().enumerate().skip(1) {
        let (h, w, values) = read_png_gray(path)?;
        if (h, w) != (height, width) {
            return Err(Error::format(
                path,
                format!(
                    "image is {h}×{w} (height×width) but {} is {height}×{width}; \
                     all images in a directory must have the same size",
                    first.display()
                ),
            ));
        }
        for (i, v) in values.into_iter().enumerate() {
            x[(i, j)] = v;
        }
    }
    Ok(Dataset {
        x,
        labels: None,
        image_shape: Some((height, width)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;

    #[test]
    fn gray_and_colour_pngs_read_as_luma() {
        let dir = temp_dir("png-read");
        let gray = image::GrayImage::from_raw(3, 2, vec![0, 51, 102, 153, 204, 255]).unwrap();
        gray.save(dir.join("gray.png")).unwrap();
        let (h, w, values) = read_png_gray(&dir.join("gray.png")).unwrap();
        assert_eq!((h, w), (2, 3));
        let expected = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        for (v, e) in values.iter().zip(expected) {
            assert!((v - e).abs() < 1e-6, "{values:?}");
        }
        let rgb = image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 255, 255, 255]).unwrap();
        rgb.save(dir.join("rgb.png")).unwrap();
        let (h, w, values) = read_png_gray(&dir.join("rgb.png")).unwrap();
        assert_eq!((h, w), (1, 2));
        assert!(
            (values[0] - 0.2126).abs() < 1e-5 && (values[1] - 1.0).abs() < 1e-5,
            "{values:?}"
        );
        std::fs::write(dir.join("bad.png"), b"not a png").unwrap();
        assert!(matches!(
            read_png_gray(&dir.join("bad.png")),
            Err(Error::Format { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn directory_is_sorted_by_name_and_sizes_must_agree() {
        let dir = temp_dir("png-dir");
        for (name, value) in [("b.png", 255u8), ("a.png", 0), ("c.PNG", 51)] {
            image::GrayImage::from_pixel(4, 3, image::Luma([value]))
                .save(dir.join(name))
                .unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let ds = load_png_dir(&dir).unwrap();
        assert_eq!(
            (ds.dim(), ds.n_samples(), ds.image_shape),
            (12, 3, Some((3, 4)))
        );
        assert_eq!([ds.x[(0, 0)], ds.x[(5, 1)]], [0.0, 1.0]);
        assert!((ds.x[(11, 2)] - 0.2).abs() < 1e-6);

        image::GrayImage::new(5, 3).save(dir.join("d.png")).unwrap();
        let err = load_png_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("d.png") && err.contains("3×5") && err.contains("3×4"),
            "{err}"
        );

        let empty = temp_dir("png-empty");
        assert!(
            load_png_dir(&empty)
                .unwrap_err()
                .to_string()
                .contains("no *.png")
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&empty);
    }
}
