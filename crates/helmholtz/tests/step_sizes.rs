//! Every learning rate and step size (SGD, Adam, SNGD's β and its λ's Adam, MCEF's β) refuses
//! NaN, ±inf, zero and negative values with the same message.

use faer::Mat;
use helmholtz::dist::skew::SkewNormal;
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
use helmholtz::models::{ParamSet, Tensor};
use helmholtz::optim::sngd::{LineSearch, Mcef, SngdMean};
use helmholtz::optim::{Optimizer, OptimizerConfig, Schedule};

const BAD: [f64; 5] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.5];

fn params() -> ParamSet {
    ParamSet {
        tensors: vec![Tensor {
            name: "w".into(),
            shape: vec![2],
            data: vec![0.0; 2],
        }],
    }
}

fn sngd(search: LineSearch, lr_lambda: f64) -> helmholtz::Result<SngdMean<SkewNormal>> {
    SngdMean::<SkewNormal>::new(
        GaussianMixture::single(2),
        Gaussians::single(vec![0.0; 2], Mat::identity(2, 2)),
        vec![0.0; 2],
        lr_lambda,
        search,
    )
}

#[test]
fn every_step_size_refuses_nan_infinities_zero_and_negatives_alike() {
    let q = SkewNormal::new(vec![0.0; 2], Mat::identity(2, 2), vec![0.0; 2]).unwrap();
    let good = LineSearch::Backtracking {
        start: 0.1,
        halvings: 5,
    };
    for bad in BAD {
        let messages = [
            Optimizer::adam(bad, &params()).err().map(|e| e.to_string()),
            Optimizer::new(OptimizerConfig::Sgd, bad, Schedule::Constant, &params())
                .err()
                .map(|e| e.to_string()),
            sngd(LineSearch::Fixed(bad), 0.01)
                .err()
                .map(|e| e.to_string()),
            sngd(
                LineSearch::Backtracking {
                    start: bad,
                    halvings: 5,
                },
                0.01,
            )
            .err()
            .map(|e| e.to_string()),
            sngd(good, bad).err().map(|e| e.to_string()),
            Mcef::new(&q, LineSearch::Fixed(bad))
                .err()
                .map(|e| e.to_string()),
        ];
        for (k, message) in messages.iter().enumerate() {
            let message = message
                .as_ref()
                .unwrap_or_else(|| panic!("case {k} accepted {bad}"));
            assert!(
                message.contains("must be a finite positive number")
                    && message.contains(&format!("got {bad}")),
                "case {k}: {message}"
            );
        }
    }
    assert!(sngd(good, 0.01).is_ok());
    assert!(sngd(LineSearch::Grid { points: 0 }, 0.01).is_err());
}
