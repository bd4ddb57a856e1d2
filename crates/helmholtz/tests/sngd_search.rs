//! SNGD's `Decrease` search is a descent method on a fixed objective: from a large first step,
//! the NLL of a skew-normal fit never increases, while the paper's validity-only backtracking
//! from the same step does climb.

use faer::Mat;
use helmholtz::dist::skew::SkewNormal;
use helmholtz::dist::surrogate::{GaussianMixture, Gaussians};
use helmholtz::math::rng::Stream;
use helmholtz::objectives::targets::Target;
use helmholtz::objectives::targets::skew_normal::SkewNormalNll;
use helmholtz::optim::sngd::{LineSearch, Method, SngdMean};

fn values(search: LineSearch) -> Vec<f64> {
    let truth = SkewNormal::new(
        vec![1.0, -1.0],
        Mat::from_fn(2, 2, |r, c| if r == c { 1.0 } else { 0.5 }),
        vec![4.0, -2.0],
    )
    .unwrap();
    let data = truth.sample(1000, &mut Stream::new(5, &[])).unwrap();
    let target = SkewNormalNll {
        points: data.as_ref(),
    };
    let start = Gaussians::single(vec![0.0; 2], Mat::identity(2, 2));
    let mut sngd = SngdMean::<SkewNormal>::new(
        GaussianMixture::single(2),
        start,
        vec![0.5, -0.5],
        0.1,
        search,
    )
    .unwrap();
    let mut out = Vec::new();
    for _ in 0..60 {
        out.push(target.value(&sngd.distribution().unwrap()).unwrap());
        sngd.step(&target).unwrap();
    }
    out
}

#[test]
fn the_decrease_search_never_climbs_where_validity_backtracking_does() {
    let descent = values(LineSearch::Decrease {
        start: 4.0,
        halvings: 30,
    });
    // λ moves by Adam after each step, so only the θ step is held to a decrease: the value can
    // still rise through λ, by far less than an unchecked step moves it.
    let worst_rise = descent
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::NEG_INFINITY, f64::max);
    let validity = values(LineSearch::Backtracking {
        start: 4.0,
        halvings: 30,
    });
    let validity_rise = validity
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        validity_rise > 10.0 * worst_rise.max(1e-12),
        "validity {validity_rise}, decrease {worst_rise}"
    );
    assert!(descent.last().unwrap() < &(descent[0] - 0.1), "{descent:?}");
    assert!(
        descent.last().unwrap() <= validity.last().unwrap(),
        "{descent:?} vs {validity:?}"
    );
}
