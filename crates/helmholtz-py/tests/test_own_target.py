"""helmholtz.sngd.minimize: a distribution the library does not ship, written in Python and
numpy as fun(params) -> (value, gradient) in a surrogate's coordinates, fitted by the library's
SNGD. Tested: a Weibull through the Gamma surrogate reaches the Weibull MLE (solved here by
bisection) and the generating parameters within 4 asymptotic standard errors (√((H⁻¹)_ii / n),
H the Hessian of the mean NLL per point, by central differences); a log-normal through the
Gaussian surrogate lands on its closed-form MLE in one unit step (the target is the surrogate);
a multivariate t (location and scale through the Gaussian, λ = ln(ν − 2) beside it) recovers
its parameters within 4 standard errors; the gradient checker finds a wrong gradient; an
exception in fun propagates as itself, and a gradient of wrong keys or shapes is a ValueError
naming the key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from estimates import standard_errors
from helmholtz import DataError, DivergedError, sngd


# --- Weibull(k, scale) through the Gamma surrogate: k = shape, scale = shape / rate ----------

K, SCALE, N = 1.7, 3.0, 5000


def weibull_target(x):
    """The mean NLL of a Weibull and its gradient in the Gamma's (shape α, rate β), with
    k = α and scale λ = α/β: f = mean[−ln k + k ln λ − (k − 1) ln x + (x/λ)^k]."""
    log_x = np.log(x)

    def nll_k_scale(k, scale):
        r = log_x - math.log(scale)
        t = np.exp(k * r)
        value = np.mean(-math.log(k) + k * math.log(scale) - (k - 1) * log_x + t)
        return value, np.mean(-1 / k - r + t * r), k / scale * np.mean(1 - t)

    def fun(params):
        a, b = params["shape"], params["rate"]
        value, g_k, g_scale = nll_k_scale(a, a / b)
        # Chain rule of (k, λ) = (α, α/β).
        return value, {"shape": g_k + g_scale / b, "rate": -g_scale * a / b**2}

    return fun, nll_k_scale


def weibull_mle(x):
    """The Weibull MLE: k solves 1/k + mean ln x − Σ x^k ln x / Σ x^k = 0 (decreasing in k),
    by bisection; then λ = (mean x^k)^(1/k)."""
    log_x = np.log(x)

    def score(k):
        w = np.exp(k * (log_x - log_x.max()))
        return 1 / k + log_x.mean() - (w * log_x).sum() / w.sum()

    lo, hi = 0.01, 50.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if score(mid) > 0 else (lo, mid)
    k = 0.5 * (lo + hi)
    return k, np.mean(x**k) ** (1 / k)


def test_a_weibull_in_python_is_fitted_through_the_gamma_surrogate():
    x = SCALE * np.random.default_rng(0).weibull(K, size=N)
    fun, nll_k_scale = weibull_target(x)
    # The gradient against central differences away from the optimum, before trusting it.
    report = sngd.check_gradient(fun, {"shape": 0.8, "rate": 0.2})
    assert report.passes(1e-6), report.coordinates
    result = sngd.minimize(fun, {"shape": 1.0, "rate": 1.0}, iterations=200, tol=1e-13)
    assert result.ended == "converged" and result.steps < 200
    k, scale = result.params["shape"], result.params["shape"] / result.params["rate"]
    k_mle, scale_mle = weibull_mle(x)
    assert abs(k - k_mle) < 1e-6 and abs(scale - scale_mle) < 1e-6, (k, scale, k_mle, scale_mle)
    se = standard_errors(lambda t: nll_k_scale(t[0], t[1])[0], [k, scale], N)
    z = np.abs(np.array([k, scale]) - [K, SCALE]) / se
    assert np.all(z <= 4), (k, scale, se)
    # The objective went down at every step (the decrease line search), to the final value.
    assert np.all(np.diff(result.values) <= 1e-12)
    assert result.value == result.values[-1] == pytest.approx(nll_k_scale(k, scale)[0])


def test_a_log_normal_lands_on_its_mle_in_one_unit_step():
    # ln x ~ N(m, S): the target is the Gaussian surrogate (plus a constant), so one step of
    # size 1 in its mean parameters is the maximum-likelihood estimate (natgrad.md b.3).
    rng = np.random.default_rng(1)
    z = rng.multivariate_normal([0.5, -1.0], [[0.4, 0.1], [0.1, 0.2]], size=2000)
    x = np.exp(z)

    def fun(params):
        m, s = params["mean"], params["covariance"]
        precision = np.linalg.inv(s)
        c = z - m
        scatter = c.T @ c / len(c)
        value = np.log(x).sum(axis=1).mean() + 0.5 * (
            2 * math.log(2 * math.pi) + np.linalg.slogdet(s)[1] + np.sum(precision * scatter)
        )
        grad = {
            "mean": -precision @ c.mean(axis=0),
            "covariance": 0.5 * precision - 0.5 * precision @ scatter @ precision,
        }
        return value, grad

    assert sngd.check_gradient(fun, {"mean": [0.0, 0.0], "covariance": np.eye(2)}).passes(1e-6)
    result = sngd.minimize(fun, {"mean": np.zeros(2), "covariance": np.eye(2)},
                           iterations=1, search="fixed", lr=1.0)
    m_hat = z.mean(axis=0)
    s_hat = (z - m_hat).T @ (z - m_hat) / len(z)
    np.testing.assert_allclose(result.params["mean"], m_hat, atol=1e-10)
    np.testing.assert_allclose(result.params["covariance"], s_hat, atol=1e-10)
    assert result.steps == 1 and result.evaluations == 2


def digamma(v):
    """ψ(v) for v > 0: the recurrence to v ≥ 6, then the asymptotic series (error < 1e-12)."""
    out = 0.0
    while v < 6:
        out -= 1 / v
        v += 1
    inv2 = 1 / (v * v)
    return out + math.log(v) - 0.5 / v - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 / 252))


def t_target(x):
    """The multivariate t's mean NLL in (m, Σ, λ), ν = 2 + e^λ, and its gradient."""
    n, d = x.shape

    def nll(m, s, nu):
        c = x - m
        precision = np.linalg.inv(s)
        delta = np.einsum("ij,jk,ik->i", c, precision, c)
        value = -np.mean(
            math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - d / 2 * math.log(nu * math.pi)
            - 0.5 * np.linalg.slogdet(s)[1] - (nu + d) / 2 * np.log1p(delta / nu)
        )
        return value, c, precision, delta

    def fun(params):
        m, s, lam = params["mean"], params["covariance"], params["lambda"][0]
        nu = 2 + math.exp(lam)
        value, c, precision, delta = nll(m, s, nu)
        w = (nu + d) / (nu + delta)
        pc = c @ precision
        g_nu = -np.mean(
            0.5 * digamma((nu + d) / 2) - 0.5 * digamma(nu / 2) - d / (2 * nu)
            - 0.5 * np.log1p(delta / nu) + (nu + d) / 2 * delta / (nu * nu + nu * delta)
        )
        grad = {
            "mean": -(w[:, None] * pc).mean(axis=0),
            "covariance": 0.5 * precision - 0.5 * (pc * w[:, None]).T @ pc / n,
            "lambda": np.array([g_nu * (nu - 2)]),
        }
        return value, grad

    return fun, nll


def test_a_multivariate_t_recovers_location_scale_and_degrees_of_freedom():
    rng = np.random.default_rng(2)
    m0, s0, nu0, n = np.array([1.0, -1.0]), np.array([[1.0, 0.5], [0.5, 2.0]]), 6.0, 4000
    x = m0 + rng.multivariate_normal(np.zeros(2), s0, size=n) / np.sqrt(
        rng.chisquare(nu0, size=n) / nu0)[:, None]
    fun, nll = t_target(x)
    at = {"mean": [0.3, 0.1], "covariance": [[2.0, 0.3], [0.3, 1.0]], "lambda": [1.0]}
    report = sngd.check_gradient(fun, at)
    assert report.passes(1e-6), report.worst()
    start = {"mean": x.mean(axis=0), "covariance": np.cov(x.T), "lambda": [math.log(50 - 2)]}
    result = sngd.minimize(fun, start, iterations=500, lambda_step="quasi-newton", tol=1e-12)
    assert result.ended == "converged", result.values[-5:]
    p = result.params
    nu = 2 + math.exp(p["lambda"][0])
    fitted = np.array([*p["mean"], p["covariance"][0, 0], p["covariance"][1, 0],
                       p["covariance"][1, 1], nu])
    truth = np.array([*m0, s0[0, 0], s0[1, 0], s0[1, 1], nu0])

    def mean_nll(t):
        s = np.array([[t[2], t[3]], [t[3], t[4]]])
        return nll(t[:2], s, t[5])[0]

    se = standard_errors(mean_nll, fitted, n)
    z = np.abs(fitted - truth) / se
    assert np.all(z <= 4), (fitted, truth, se)


class Boom(Exception):
    pass


def gamma_fun(grad):
    """A Gamma-coordinates target returning ``grad(params)`` as its gradient."""
    return lambda params: ((params["shape"] - 2) ** 2 + (params["rate"] - 1) ** 2, grad(params))


def good(params):
    return {"shape": 2 * (params["shape"] - 2), "rate": 2 * (params["rate"] - 1)}


def test_exceptions_in_fun_propagate_as_themselves():
    calls = []

    def fun(params):
        calls.append(params)
        if len(calls) == 3:
            raise Boom("my target failed at call 3")
        return gamma_fun(good)(params)

    with pytest.raises(Boom, match="my target failed at call 3"):
        sngd.minimize(fun, {"shape": 1.0, "rate": 1.0}, iterations=50)
    assert len(calls) == 3  # nothing more was called after the exception
    with pytest.raises(ZeroDivisionError):
        sngd.check_gradient(lambda p: (1 / 0, {}), {"shape": 1.0, "rate": 1.0})
    # A quadratic in (α, β) is minimised where its gradient vanishes.
    result = sngd.minimize(gamma_fun(good), {"shape": 1.0, "rate": 1.0}, iterations=300, tol=1e-14)
    assert abs(result.params["shape"] - 2) < 1e-5 and abs(result.params["rate"] - 1) < 1e-5


@pytest.mark.parametrize(
    "grad, words",
    [
        (lambda p: {"shape": 1.0}, 'fun\'s gradient has no key "rate"'),
        (lambda p: {**good(p), "scale": 0.0}, 'has the key "scale", which is not a parameter'),
        (lambda p: {"shape": [1.0, 2.0], "rate": 0.0}, "gradient[\"shape\"] has shape (2,), expected ()"),
        (lambda p: {"shape": "x", "rate": 0.0}, 'gradient["shape"] cannot be read as numbers'),
        (lambda p: [1.0, 2.0], "fun's gradient must be a dict"),
        (lambda p: {"shape": np.nan, "rate": 0.0}, "non-finite"),
    ],
)
def test_a_malformed_gradient_is_a_value_error_naming_the_key(grad, words):
    with pytest.raises(ValueError) as raised:
        sngd.minimize(gamma_fun(grad), {"shape": 1.0, "rate": 1.0}, iterations=5)
    assert words in str(raised.value), str(raised.value)


def test_gaussian_gradient_shapes_and_bad_starts_are_named():
    def fun(params):
        return float(np.sum(params["mean"] ** 2)), {"mean": params["mean"], "covariance": np.zeros(3)}

    start = {"mean": np.zeros(2), "covariance": np.eye(2)}
    with pytest.raises(ValueError, match=r'gradient\["covariance"\] has shape \(3,\), expected \(2, 2\)'):
        sngd.minimize(fun, start)
    with pytest.raises(ValueError, match="must return a pair"):
        sngd.minimize(lambda p: 1.0, start)
    with pytest.raises(DataError, match=r'start\["covariance"\] is not positive definite'):
        sngd.minimize(fun, {"mean": np.zeros(2), "covariance": -np.eye(2)})
    with pytest.raises(ValueError, match=r'start\["covariance"\] is not symmetric'):
        sngd.minimize(fun, {"mean": np.zeros(2), "covariance": [[1.0, 0.5], [0.0, 1.0]]})
    with pytest.raises(ValueError, match=r'start\["rate"\] = -1: the Gamma'):
        sngd.minimize(fun, {"shape": 1.0, "rate": -1.0})
    with pytest.raises(ValueError, match="surrogate = 'beta'"):
        sngd.minimize(fun, start, surrogate="beta")
    with pytest.raises(ValueError, match="search = 'newton'"):
        sngd.minimize(fun, start, search="newton")
    # A value that is not finite at the start: the step cannot begin.
    with pytest.raises(DivergedError, match="step 1"):
        sngd.minimize(lambda p: (math.inf, {"mean": p["mean"], "covariance": np.eye(2)}), start)


def test_the_gradient_check_finds_a_wrong_gradient():
    def wrong(params):
        value, grad = gamma_fun(good)(params)
        return value, {**grad, "rate": -grad["rate"]}

    report = sngd.check_gradient(wrong, {"shape": 1.0, "rate": 3.0})
    assert not report.passes(1e-6) and report.worst()[0] == "rate"
    with pytest.raises(ValueError, match="at rate"):
        report.require()
    # A symmetric matrix coordinate moves both entries: its derivative is g_jk + g_kj.
    a = np.array([[0.3, -0.2], [0.5, 1.1]])
    fun = lambda p: (float(np.sum(a * p["covariance"])), {"mean": np.zeros(2), "covariance": a})  # noqa: E731
    report = sngd.check_gradient(fun, {"mean": np.zeros(2), "covariance": np.eye(2)})
    assert report.passes(1e-8), report.coordinates
    assert [c[0] for c in report.coordinates] == [
        "mean[0]", "mean[1]", "covariance[0, 0]", "covariance[0, 1]", "covariance[1, 1]"]
