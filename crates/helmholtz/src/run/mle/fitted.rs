//! A fitted distribution of any `mle` family: its NLL on observations, draws from it, its
//! parameters as JSON (`params.json`) and as readable text, and its parameters in the data's own
//! units when the run transformed the data.

use faer::Mat;
use serde_json::{Value, json};

use super::Family;
use super::data::Observations;
use crate::data::table::Transform;
use crate::dist::copula::StudentTCopula;
use crate::dist::skew::{SkewNormal, SkewT};
use crate::error::{Error, Result};
use crate::math::rng::Stream;
use crate::math::special::negative_binomial_draw;
use crate::objectives::targets::centred_skew::CentredSkewNormal;
use crate::objectives::targets::negative_binomial::{NbMixtureParams, NegativeBinomial};

/// A distribution of one of the `mle` families, in its standard coordinates.
#[derive(Clone, Debug)]
pub enum Fitted {
    /// NB(r, s).
    NegativeBinomial(NegativeBinomial),
    /// Σ_k p_k NB(r_k, s_k).
    NbMixture(NbMixtureParams),
    /// SN(ξ, Ω, η).
    SkewNormal(SkewNormal),
    /// ST(ξ, Ω, η, ν).
    SkewT(SkewT),
    /// C(R, ν).
    TCopula(StudentTCopula),
}

impl From<NegativeBinomial> for Fitted {
    fn from(q: NegativeBinomial) -> Self {
        Fitted::NegativeBinomial(q)
    }
}

impl From<NbMixtureParams> for Fitted {
    fn from(q: NbMixtureParams) -> Self {
        Fitted::NbMixture(q)
    }
}

impl From<SkewNormal> for Fitted {
    fn from(q: SkewNormal) -> Self {
        Fitted::SkewNormal(q)
    }
}

impl From<CentredSkewNormal> for Fitted {
    fn from(q: CentredSkewNormal) -> Self {
        Fitted::SkewNormal(q.0)
    }
}

impl From<SkewT> for Fitted {
    fn from(q: SkewT) -> Self {
        Fitted::SkewT(q)
    }
}

impl From<StudentTCopula> for Fitted {
    fn from(q: StudentTCopula) -> Self {
        Fitted::TCopula(q)
    }
}

fn nb_mean(r: f64, s: f64) -> f64 {
    r * (1.0 - s) / s
}

fn matrix_json(m: &Mat<f64>) -> Value {
    let rows: Vec<Vec<f64>> = (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
        .collect();
    json!(rows)
}

fn number(value: &Value, key: &str) -> Result<f64> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::Checkpoint(format!("params.json: no number {key:?}")))
}

fn vector(value: &Value, key: &str) -> Result<Vec<f64>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| Error::Checkpoint(format!("params.json: no list of numbers {key:?}")))
}

fn matrix(value: &Value, key: &str) -> Result<Mat<f64>> {
    let bad = || Error::Checkpoint(format!("params.json: no square matrix {key:?}"));
    let rows: Vec<Vec<f64>> = value
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(bad)?
        .iter()
        .map(|row| {
            row.as_array()
                .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let d = rows.len();
    if rows.iter().any(|r| r.len() != d) {
        return Err(bad());
    }
    Ok(Mat::from_fn(d, d, |i, j| rows[i][j]))
}

impl Fitted {
    /// The family.
    pub fn family(&self) -> Family {
        match self {
            Fitted::NegativeBinomial(_) => Family::NegativeBinomial,
            Fitted::NbMixture(_) => Family::NbMixture,
            Fitted::SkewNormal(_) => Family::SkewNormal,
            Fitted::SkewT(_) => Family::SkewT,
            Fitted::TCopula(_) => Family::TCopula,
        }
    }

    /// The values per draw.
    pub fn dim(&self) -> usize {
        match self {
            Fitted::NegativeBinomial(_) | Fitted::NbMixture(_) => 1,
            Fitted::SkewNormal(q) => q.dim(),
            Fitted::SkewT(q) => q.base.dim(),
            Fitted::TCopula(q) => q.dim(),
        }
    }

    /// The mean negative log-likelihood of `data` in nats (in the model's coordinates: without
    /// a transform's log-scale).
    pub fn nll(&self, data: &Observations) -> Result<f64> {
        match (self, data) {
            (Fitted::NegativeBinomial(q), Observations::Counts(c)) => Ok(c.nll(q.r, q.s)?.0),
            (Fitted::NbMixture(q), Observations::Counts(c)) => {
                Ok(c.mixture_nll(&q.weights, &q.r, &q.s)?.0)
            }
            (Fitted::SkewNormal(q), Observations::Points(x)) => q.nll(x.as_ref()),
            (Fitted::SkewT(q), Observations::Points(x)) => q.nll(x.as_ref()),
            (Fitted::TCopula(q), Observations::Points(x)) => q.nll(x.as_ref()),
            (q, _) => Err(Error::Config(format!(
                "a {} does not take these observations",
                q.family().name()
            ))),
        }
    }

    /// `n` draws as the rows of an n × d matrix (counts as whole numbers).
    pub fn sample(&self, n: usize, rng: &mut Stream) -> Result<Mat<f64>> {
        match self {
            Fitted::NegativeBinomial(q) => Ok(Mat::from_fn(n, 1, |_, _| {
                negative_binomial_draw(q.r, q.s, rng) as f64
            })),
            Fitted::NbMixture(q) => Ok(Mat::from_fn(n, 1, |_, _| q.draw(rng) as f64)),
            Fitted::SkewNormal(q) => q.sample(n, rng),
            Fitted::SkewT(q) => q.sample(n, rng),
            Fitted::TCopula(q) => q.sample(n, rng),
        }
    }

    /// The distribution of x = shift + scale ⊙ z when this one is that of z: for the skew
    /// families ξ ↦ shift + Dξ, Ω ↦ DΩD, η ↦ D⁻¹η with D = diag(scale) (ν unchanged);
    /// the others are not transformed and are returned as they are.
    pub fn in_data_units(&self, transform: &Transform) -> Result<Fitted> {
        let (shift, scale) = (&transform.shift, &transform.scale);
        let map = |q: &SkewNormal| -> Result<SkewNormal> {
            let d = q.dim();
            SkewNormal::new(
                (0..d).map(|j| shift[j] + scale[j] * q.xi[j]).collect(),
                Mat::from_fn(d, d, |a, b| scale[a] * q.omega[(a, b)] * scale[b]),
                (0..d).map(|j| q.eta[j] / scale[j]).collect(),
            )
        };
        Ok(match self {
            Fitted::SkewNormal(q) => Fitted::SkewNormal(map(q)?),
            Fitted::SkewT(q) => Fitted::SkewT(SkewT {
                base: map(&q.base)?,
                nu: q.nu,
            }),
            other => other.clone(),
        })
    }

    /// The parameters as JSON, in the family's standard coordinates (with derived values: an
    /// NB's p = 1 − s and mean r(1 − s)/s).
    pub fn to_json(&self) -> Value {
        let nb = |weight: Option<f64>, r: f64, s: f64| {
            let mut v = json!({ "r": r, "s": s, "p": 1.0 - s, "mean": nb_mean(r, s) });
            if let Some(w) = weight {
                v["weight"] = w.into();
            }
            v
        };
        match self {
            Fitted::NegativeBinomial(q) => nb(None, q.r, q.s),
            Fitted::NbMixture(q) => json!({
                "weights": q.weights,
                "components": (0..q.weights.len())
                    .map(|j| nb(Some(q.weights[j]), q.r[j], q.s[j]))
                    .collect::<Vec<_>>(),
            }),
            Fitted::SkewNormal(q) => json!({
                "xi": q.xi, "omega": matrix_json(&q.omega), "eta": q.eta,
            }),
            Fitted::SkewT(q) => json!({
                "xi": q.base.xi, "omega": matrix_json(&q.base.omega), "eta": q.base.eta,
                "nu": q.nu,
            }),
            Fitted::TCopula(q) => json!({ "r": matrix_json(&q.r), "nu": q.nu }),
        }
    }

    /// The distribution of `family` written by [`Fitted::to_json`].
    pub fn from_json(family: Family, value: &Value) -> Result<Fitted> {
        Ok(match family {
            Family::NegativeBinomial => Fitted::NegativeBinomial(NegativeBinomial {
                r: number(value, "r")?,
                s: number(value, "s")?,
            }),
            Family::NbMixture => {
                let components = value
                    .get("components")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Error::Checkpoint("params.json: no \"components\"".into()))?;
                let pick = |key: &str| -> Result<Vec<f64>> {
                    components.iter().map(|c| number(c, key)).collect()
                };
                Fitted::NbMixture(NbMixtureParams {
                    weights: vector(value, "weights")?,
                    r: pick("r")?,
                    s: pick("s")?,
                })
            }
            Family::SkewNormal => Fitted::SkewNormal(SkewNormal::new(
                vector(value, "xi")?,
                matrix(value, "omega")?,
                vector(value, "eta")?,
            )?),
            Family::SkewT => Fitted::SkewT(SkewT::new(
                vector(value, "xi")?,
                matrix(value, "omega")?,
                vector(value, "eta")?,
                number(value, "nu")?,
            )?),
            Family::TCopula => Fitted::TCopula(StudentTCopula::new(
                matrix(value, "r")?,
                number(value, "nu")?,
            )?),
        })
    }

    /// The parameters as readable text; `columns` name the coordinates.
    pub fn describe(&self, columns: &[String]) -> String {
        let vector_line = |name: &str, v: &[f64]| {
            let cells: Vec<String> = v.iter().map(|x| format!("{x:>11.5}")).collect();
            format!("  {name:<6}{}\n", cells.join(" "))
        };
        let matrix_lines = |name: &str, m: &Mat<f64>| {
            let mut out = String::new();
            for i in 0..m.nrows() {
                let row: Vec<f64> = (0..m.ncols()).map(|j| m[(i, j)]).collect();
                out.push_str(&vector_line(if i == 0 { name } else { "" }, &row));
            }
            out
        };
        let header = {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| {
                    let short: String = c.chars().take(11).collect();
                    format!("{short:>11}")
                })
                .collect();
            format!("  {:<6}{}\n", "", cells.join(" "))
        };
        match self {
            Fitted::NegativeBinomial(q) => format!(
                "negative binomial NB(r, s) of {}: r = {:.6}, s = {:.6} (p = 1 − s = {:.6}), mean {:.6}\n",
                columns.first().map_or("the counts", String::as_str),
                q.r,
                q.s,
                1.0 - q.s,
                nb_mean(q.r, q.s)
            ),
            Fitted::NbMixture(q) => {
                let mut out = format!(
                    "mixture of {} negative binomials of {}:\n  {:>9} {:>12} {:>10} {:>12}\n",
                    q.weights.len(),
                    columns.first().map_or("the counts", String::as_str),
                    "weight",
                    "r",
                    "s",
                    "mean"
                );
                for j in 0..q.weights.len() {
                    out.push_str(&format!(
                        "  {:>9.5} {:>12.5} {:>10.6} {:>12.4}\n",
                        q.weights[j],
                        q.r[j],
                        q.s[j],
                        nb_mean(q.r[j], q.s[j])
                    ));
                }
                out
            }
            Fitted::SkewNormal(q) => format!(
                "skew-normal SN(ξ, Ω, η) of dimension {}:\n{header}{}{}{}",
                q.dim(),
                vector_line("ξ", &q.xi),
                matrix_lines("Ω", &q.omega),
                vector_line("η", &q.eta)
            ),
            Fitted::SkewT(q) => format!(
                "skew-t ST(ξ, Ω, η, ν) of dimension {}, ν = {:.5}:\n{header}{}{}{}",
                q.base.dim(),
                q.nu,
                vector_line("ξ", &q.base.xi),
                matrix_lines("Ω", &q.base.omega),
                vector_line("η", &q.base.eta)
            ),
            Fitted::TCopula(q) => format!(
                "Student-t copula C(R, ν) of dimension {}, ν = {:.5}:\n{header}{}",
                q.dim(),
                q.nu,
                matrix_lines("R", &q.r)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::table::TransformKind;

    /// The NLL of x under the skew-normal in data units equals the NLL of z = (x − shift)/scale
    /// under the fitted one plus Σ ln scale; the JSON round trip is exact.
    #[test]
    fn data_units_shift_the_nll_by_the_log_scale_and_json_round_trips() {
        let q = SkewT::new(
            vec![0.3, -0.2],
            Mat::from_fn(2, 2, |a, b| if a == b { 1.2 } else { 0.4 }),
            vec![1.5, -0.5],
            7.0,
        )
        .unwrap();
        let fitted = Fitted::SkewT(q);
        let z = fitted.sample(50, &mut Stream::new(1, &[])).unwrap();
        let transform = Transform {
            kind: TransformKind::Standardize,
            shift: vec![10.0, -3.0],
            scale: vec![2.0, 0.25],
        };
        let x = transform.invert(z.as_ref());
        let in_x = fitted.in_data_units(&transform).unwrap();
        let nll_z = fitted.nll(&Observations::Points(z)).unwrap();
        let nll_x = in_x.nll(&Observations::Points(x)).unwrap();
        assert!((nll_x - (nll_z + transform.log_scale())).abs() < 1e-12);
        for f in [fitted, in_x] {
            let back = Fitted::from_json(f.family(), &f.to_json()).unwrap();
            assert_eq!(back.to_json(), f.to_json());
        }
        let mixture = Fitted::NbMixture(NbMixtureParams {
            weights: vec![0.25, 0.75],
            r: vec![2.0, 9.0],
            s: vec![0.5, 0.1],
        });
        let back = Fitted::from_json(Family::NbMixture, &mixture.to_json()).unwrap();
        assert_eq!(back.to_json(), mixture.to_json());
        let draws = mixture.sample(2000, &mut Stream::new(2, &[])).unwrap();
        let mean = (0..2000).map(|i| draws[(i, 0)]).sum::<f64>() / 2000.0;
        // The mixture's mean is 0.25·2 + 0.75·81 = 61.25.
        assert!((mean - 61.25).abs() < 5.0, "{mean}");
        assert!(mixture.describe(&["visits".into()]).contains("visits"));
    }
}
