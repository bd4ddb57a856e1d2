//! Checkpoints: tensors in safetensors, counters and optimizer scalars in JSON.
//!
//! A checkpoint folder is written and swapped in by [`super::RunDir::write_checkpoint`], so a
//! crash while writing never destroys the previous one.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::models::{ParamSet, Tensor};

/// Refuses to checkpoint non-finite parameters, so that the last good checkpoint is kept.
pub fn check_finite(params: &ParamSet) -> Result<()> {
    match params.first_non_finite() {
        Some(name) => Err(Error::Diverged(format!(
            "parameter {name} is not finite; the last good checkpoint is kept"
        ))),
        None => Ok(()),
    }
}

/// Writes a parameter set as a safetensors file.
pub fn write_tensors(path: &Path, set: &ParamSet) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = set
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| Error::Checkpoint(format!("tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let buffer = safetensors::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| Error::Checkpoint(e.to_string()))?;
    // Written beside the target and renamed over it, so a crash never leaves half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, buffer).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
}

/// Reads the tensors named like those of `layout` (same names and shapes) from a safetensors file.
pub fn read_tensors(path: &Path, layout: &ParamSet) -> Result<ParamSet> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut tensors = Vec::with_capacity(layout.tensors.len());
    for expected in &layout.tensors {
        let view = file
            .tensor(&expected.name)
            .map_err(|_| Error::format(path, format!("tensor {} is missing", expected.name)))?;
        if view.dtype() != Dtype::F32 || view.shape() != expected.shape.as_slice() {
            return Err(Error::format(
                path,
                format!(
                    "tensor {} is {:?} {:?}, expected F32 {:?}",
                    expected.name,
                    view.dtype(),
                    view.shape(),
                    expected.shape
                ),
            ));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensors.push(Tensor {
            name: expected.name.clone(),
            shape: expected.shape.clone(),
            data,
        });
    }
    Ok(ParamSet { tensors })
}

/// Reads every f32 tensor of a safetensors file, sorted by name, with its stored shape.
pub fn read_all_tensors(path: &Path) -> Result<ParamSet> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let mut names: Vec<String> = file.names().into_iter().map(|n| n.to_string()).collect();
    names.sort();
    let layout = ParamSet {
        tensors: names
            .iter()
            .map(|name| {
                let view = file.tensor(name).expect("listed name");
                Tensor {
                    name: name.clone(),
                    shape: view.shape().to_vec(),
                    data: Vec::new(),
                }
            })
            .collect(),
    };
    read_tensors(path, &layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_and_mismatches_are_reported() {
        let dir = std::env::temp_dir().join(format!("hh-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let set = ParamSet {
            tensors: vec![
                Tensor {
                    name: "a".into(),
                    shape: vec![2, 3],
                    data: vec![1.0, -2.5, 3.0, f32::MIN_POSITIVE, 5.0, 6.0],
                },
                Tensor {
                    name: "b".into(),
                    shape: vec![1],
                    data: vec![0.25],
                },
            ],
        };
        let path = dir.join("t.safetensors");
        write_tensors(&path, &set).unwrap();
        assert_eq!(read_tensors(&path, &set).unwrap(), set);
        let mut other = set.clone();
        other.tensors[1].shape = vec![2];
        assert!(
            read_tensors(&path, &other)
                .unwrap_err()
                .to_string()
                .contains("tensor b")
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(
            read_tensors(&path, &set)
                .unwrap_err()
                .to_string()
                .contains("not a safetensors")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
