//! SNGD in the mean-parameter (MLE) form (natgrad.md b.3): the state is the surrogate's mean
//! parameters μ̃, the step μ̃ ← μ̃ − β ∇_η̃ f at η̃ = η̃(μ̃), the auxiliary λ by Adam.

use crate::dist::surrogate::Surrogate;
use crate::error::Result;
use crate::optim::sngd::form::{Form, Sngd};

/// The mean-parameter form: the state moves in μ̃ along ∇_η̃ f.
pub struct MeanForm;

impl Form for MeanForm {
    fn coordinates<S: Surrogate>(surrogate: &S, point: &S::Point) -> Result<Vec<f64>> {
        surrogate.mean(point)
    }

    fn direction<S: Surrogate>(
        surrogate: &S,
        point: &S::Point,
        g: &S::Gradient,
    ) -> Result<Vec<f64>> {
        surrogate.gradient_in_natural(point, g)
    }

    fn point<S: Surrogate>(surrogate: &S, theta: &[f64]) -> Option<S::Point> {
        surrogate.point_from_mean(theta)
    }
}

/// SNGD, mean-parameter form, for a distribution `P` optimised through its surrogate.
pub type SngdMean<P> = Sngd<P, MeanForm>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::exponential_family::{ExponentialFamily, Gamma, Mixture};
    use crate::dist::negative_binomial::Counts;
    use crate::dist::surrogate::MeanCoordinates;
    use crate::dist::surrogate::Surrogated;
    use crate::math::rng::Stream;
    use crate::math::special::{gamma_draw, negative_binomial_draw};
    use crate::objectives::targets::Target;
    use crate::objectives::targets::negative_binomial::{NbMixtureNll, NbMixtureParams};
    use crate::optim::sngd::{LineSearch, Method};

    /// A Gamma target through the Gamma surrogate: f(η) = A(η) − η·T̄ (the mean NLL without the
    /// base measure), ∇_η f = μ(η) − T̄; the distribution is the Gamma's natural parameters.
    struct GammaNll {
        t_bar: [f64; 2],
    }

    #[derive(Clone)]
    struct GammaNatural(Vec<f64>);

    impl Target for GammaNll {
        type Point = GammaNatural;
        type Gradient = Vec<f64>;
        fn evaluate(&self, q: &GammaNatural) -> Result<(f64, Vec<f64>)> {
            let eta = &q.0;
            let a = Gamma.log_partition(eta)?;
            let mu = Gamma.mean_from_natural(eta)?;
            Ok((
                a - eta[0] * self.t_bar[0] - eta[1] * self.t_bar[1],
                vec![mu[0] - self.t_bar[0], mu[1] - self.t_bar[1]],
            ))
        }
    }

    impl Surrogated for GammaNatural {
        type Surrogate = MeanCoordinates<Gamma>;
        type Gradient = Vec<f64>;
        fn from_surrogate(s: &MeanCoordinates<Gamma>, mu: &Vec<f64>, _: &[f64]) -> Result<Self> {
            Ok(GammaNatural(s.family.natural_from_mean(mu)?))
        }
        fn pull_back(
            &self,
            _: &MeanCoordinates<Gamma>,
            _: &Vec<f64>,
            _: &[f64],
            g: &Vec<f64>,
        ) -> Result<(Vec<f64>, Vec<f64>)> {
            Ok((g.clone(), Vec::new()))
        }
    }

    /// natgrad.md b.3: with β = 1 and the target equal to the surrogate, one MLE-form step
    /// lands on the maximum-likelihood estimate (the sample's mean sufficient statistics).
    #[test]
    fn one_step_of_size_one_lands_on_the_gamma_mle() {
        let mut rng = Stream::new(5, &[]);
        let data: Vec<f64> = (0..2000).map(|_| gamma_draw(3.0, &mut rng) / 2.0).collect();
        let n = data.len() as f64;
        let t_bar = [
            data.iter().map(|x| x.ln()).sum::<f64>() / n,
            data.iter().sum::<f64>() / n,
        ];
        let target = GammaNll { t_bar };
        let start = Gamma.mean_from_natural(&Gamma::natural(0.7, 5.0)).unwrap();
        let surrogate = MeanCoordinates { family: Gamma };
        let mut sngd = SngdMean::<GammaNatural>::new(
            surrogate,
            start,
            Vec::new(),
            0.0,
            LineSearch::Fixed(1.0),
        )
        .unwrap();
        sngd.step(&target).unwrap();
        let mu = sngd.point();
        assert!((mu[0] - t_bar[0]).abs() < 1e-12 && (mu[1] - t_bar[1]).abs() < 1e-12);
        // The gradient vanishes there: it is the MLE.
        let (_, g) = target.evaluate(&sngd.distribution().unwrap()).unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-9), "{g:?}");
    }

    /// On an NB mixture, SNGD in the Gamma-mixture surrogate's mean parameters with a grid line
    /// search lowers the NLL step after step, and reports the value it reached.
    #[test]
    fn sngd_descends_on_a_negative_binomial_mixture() {
        let mut rng = Stream::new(2, &[]);
        let data: Vec<u64> = (0..300)
            .map(|_| negative_binomial_draw(5.0, 1.0 / 11.0, &mut rng))
            .collect();
        let counts = Counts::new(&data).unwrap();
        let (p, r, s) = ([0.2, 0.5, 0.3], [2.0, 5.0, 9.0], [0.3, 0.1, 0.05]);
        let family = Mixture {
            family: Gamma,
            components: 3,
        };
        let mut mu = vec![p[0], p[1]];
        for j in 0..3 {
            let eta = Gamma::natural(r[j] * (1.0 - s[j]), s[j]);
            mu.extend(
                Gamma
                    .mean_from_natural(&eta)
                    .unwrap()
                    .iter()
                    .map(|v| p[j] * v),
            );
        }
        let target = NbMixtureNll { counts: &counts };
        let mut sngd = SngdMean::<NbMixtureParams>::new(
            MeanCoordinates { family },
            mu,
            Vec::new(),
            0.0,
            LineSearch::Grid { points: 100 },
        )
        .unwrap();
        let mut last = target.value(&sngd.distribution().unwrap()).unwrap();
        for _ in 0..5 {
            let step = sngd.step(&target).unwrap();
            assert_eq!(step.value, last);
            let reached = step.searched.unwrap();
            assert!(reached < last, "{reached} after {last}");
            assert_eq!(
                reached,
                target.value(&sngd.distribution().unwrap()).unwrap()
            );
            last = reached;
        }
    }
}
