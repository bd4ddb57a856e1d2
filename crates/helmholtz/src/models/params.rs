//! Named tensors: how every model exposes its parameters and gradients.

use crate::error::{Error, Result};

/// A named, contiguous, column-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Unique name within a model, e.g. `p.0.w`.
    pub name: String,
    /// Shape; matrices are (rows, cols) stored column-major.
    pub shape: Vec<usize>,
    /// The values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(name: impl Into<String>, shape: &[usize]) -> Self {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// A tensor of zeros with the same name and shape as `self`.
    pub fn zeros_like(&self) -> Self {
        Tensor {
            name: self.name.clone(),
            shape: self.shape.clone(),
            data: vec![0.0; self.data.len()],
        }
    }
}

/// An ordered set of named tensors (parameters, gradients or optimizer state).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamSet {
    /// The tensors, in a fixed order.
    pub tensors: Vec<Tensor>,
}

impl ParamSet {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A set with the same names and shapes, all zeros.
    pub fn zeros_like(&self) -> Self {
        ParamSet {
            tensors: self.tensors.iter().map(Tensor::zeros_like).collect(),
        }
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        for t in &mut self.tensors {
            t.data.fill(0.0);
        }
    }

    /// Adds `other` element-wise (same layout required).
    pub fn add_assign(&mut self, other: &ParamSet) {
        for (t, o) in self.tensors.iter_mut().zip(&other.tensors) {
            for (a, b) in t.data.iter_mut().zip(&o.data) {
                *a += b;
            }
        }
    }

    /// Total number of scalars.
    pub fn n_scalars(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// Whether every value is finite; otherwise the name of the first tensor that is not.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.tensors
            .iter()
            .find(|t| t.data.iter().any(|v| !v.is_finite()))
            .map(|t| t.name.as_str())
    }

    /// Checks that `other` has the same names and shapes, in the same order.
    pub fn check_same_layout(&self, other: &ParamSet) -> Result<()> {
        if self.tensors.len() != other.tensors.len() {
            return Err(Error::Dimension(format!(
                "{} tensors expected, {} given",
                self.tensors.len(),
                other.tensors.len()
            )));
        }
        for (a, b) in self.tensors.iter().zip(&other.tensors) {
            if a.name != b.name || a.shape != b.shape {
                return Err(Error::Dimension(format!(
                    "tensor {} {:?} expected, {} {:?} given",
                    a.name, a.shape, b.name, b.shape
                )));
            }
        }
        Ok(())
    }
}
