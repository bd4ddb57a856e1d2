"""helmholtz.vi.logistic_regression: variational posteriors of a logistic regression in run
directories the command line makes. On a small 2-D data set the evidence p(y | X) is computed
here by quadrature (independently of the library): −ELBO lies within 0.1 nats above −ln p(y | X)
and never below it beyond three Monte Carlo standard errors, and the posterior mean is within a
quarter of a posterior standard deviation of the exact one. A Python run and a `helmholtz vi`
run of the same arrays are identical and each resumes the other's; the predictive is the mean
of σ(xᵀw) over posterior draws; bad inputs raise the package's exceptions naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cli_binary import metrics, read, run_cli
from helmholtz import ConfigError, DataError, vi

TRUTH = np.array([1.5, -1.0])
PRIOR_SCALE = 2.0


def draw(n, seed):
    """x ~ N(0, I), y ~ Bernoulli(σ(xᵀw)) as 0/1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ TRUTH))).astype(np.int64)
    return x, y


def log_joint(x, y, w):
    """ln p(y | X, w) + ln N(w; 0, s² I) for each row of ``w`` (m, 2)."""
    t = (2 * y - 1)[None, :] * (w @ x.T)
    log_likelihood = -np.logaddexp(0.0, -t).sum(axis=1)
    s2 = PRIOR_SCALE**2
    return log_likelihood - 0.5 * (w**2).sum(axis=1) / s2 - math.log(2 * math.pi * s2)


def mode(x, y):
    """The posterior mode by Newton's method and the Laplace standard deviations there."""
    w = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        g = x.T @ (y - p) - w / PRIOR_SCALE**2
        h = (x * (p * (1 - p))[:, None]).T @ x + np.eye(2) / PRIOR_SCALE**2
        w = w + np.linalg.solve(h, g)
    return w, np.sqrt(np.diag(np.linalg.inv(h)))


def quadrature(x, y, width, cells):
    """−ln p(y | X) and the posterior mean by the midpoint rule on a square of half-width
    ``width`` Laplace standard deviations around the mode."""
    centre, sd = mode(x, y)
    step = 2 * width * sd / cells
    axes = [centre[k] - width * sd[k] + step[k] * (np.arange(cells) + 0.5) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    values = log_joint(x, y, grid)
    top = values.max()
    weights = np.exp(values - top)
    evidence = top + math.log(weights.sum() * step[0] * step[1])
    return -evidence, weights @ grid / weights.sum()


def negative_log_evidence(x, y):
    coarse, _ = quadrature(x, y, 10.0, 200)
    wide, _ = quadrature(x, y, 14.0, 280)
    fine, mean = quadrature(x, y, 10.0, 400)
    assert abs(coarse - fine) < 1e-6 and abs(wide - fine) < 1e-6, (coarse, wide, fine)
    return fine, mean


@pytest.fixture(scope="module")
def data():
    x, y = draw(150, 0)
    return x, y, negative_log_evidence(x, y)


@pytest.mark.parametrize("family", ["gaussian", "skew-normal"])
def test_negative_elbo_is_within_a_tenth_of_a_nat_of_the_evidence(data, family):
    x, y, (evidence, exact_mean) = data
    q = vi.logistic_regression(x, y, family, prior_scale=PRIOR_SCALE, intercept=False)
    gap = q.negative_elbo - evidence
    assert -3 * q.negative_elbo_se <= gap <= 0.1, (q.negative_elbo, evidence)
    assert np.all(np.abs(q.mean - exact_mean) <= 0.25 * q.sd), (q.mean, exact_mean, q.sd)
    assert np.all(np.abs(q.mean - TRUTH) <= 2 * q.sd)
    assert q.quantiles.shape == (2, 5) and np.all(np.diff(q.quantiles, axis=1) > 0)
    assert q.trace.metric("negative_elbo")[-1] < q.trace.metric("negative_elbo")[0]
    assert q.features == ["x1", "x2"]


def test_the_predictive_averages_the_posterior_draws():
    x, y = draw(150, 1)
    x_test, y_test = draw(60, 2)
    q = vi.logistic_regression(x, 2 * y - 1, "skew-t", prior_scale=PRIOR_SCALE, iterations=300,
                               final_draws=2000, transform="standardize", X_test=x_test,
                               y_test=2 * y_test - 1)
    assert list(q.classes_) == [-1, 1]
    p = q.predict_proba(x_test, draws=500, random_state=3)
    w = q.sample(500, random_state=3)
    shift, scale = np.array(q.transform["shift"]), np.array(q.transform["scale"])
    design = np.column_stack([(x_test - shift) / scale, np.ones(len(x_test))])
    by_hand = (1 / (1 + np.exp(-design @ w.T))).mean(axis=1)
    np.testing.assert_allclose(p[:, 1], by_hand, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(q.predict(x_test)) <= {-1, 1}
    # The reported held-out accuracy is that of the predictive over the final draws.
    assert q.test_accuracy == pytest.approx(np.mean(q.predict(x_test, draws=2000) == 2 * y_test - 1), abs=0.05)


def test_python_run_is_the_cli_run_and_each_resumes_the_other(tmp_path):
    x, y = draw(100, 3)
    x_test, y_test = draw(40, 4)
    for name, values in [("x", x), ("y", y), ("xt", x_test), ("yt", y_test)]:
        np.save(tmp_path / f"{name}.npy", values.astype(np.float64))
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "cli"\nseed = 5\n[data]\ntrain = "x.npy"\nlabels = "y.npy"\ntest = "xt.npy"\n'
        'test_labels = "yt.npy"\n[model]\nprior_scale = 2.0\nfamily = "skew-normal"\n'
        "[train]\niterations = 200\neval_every = 20\nfinal_draws = 1000\n"
    )
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "py"
    run_cli("vi", config, "--out", cli_dir, "--quiet")
    options = dict(prior_scale=2.0, iterations=200, eval_every=20, final_draws=1000,
                   random_state=5, X_test=x_test, y_test=y_test)
    q = vi.logistic_regression(x, y, run_dir=py_dir, **options)
    assert read(cli_dir, "posterior.json") == read(py_dir, "posterior.json")
    assert metrics(cli_dir) == metrics(py_dir)
    strip = lambda s: {k: v for k, v in s.items() if k not in ("train_s", "name")}  # noqa: E731
    assert strip(read(cli_dir, "summary.json")) == strip(read(py_dir, "summary.json"))
    # helmholtz sample on the Python run draws what sample() draws.
    run_cli("sample", py_dir, "--n", "5", "--seed", "9", "-o", tmp_path / "draws.csv")
    from_cli = np.loadtxt(tmp_path / "draws.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(from_cli, q.sample(5, random_state=9), rtol=1e-15)

    run_cli("vi", "--resume", py_dir, "--set", "train.iterations=300", "--quiet")
    vi.resume(cli_dir, iterations=300)
    whole = vi.logistic_regression(x, y, run_dir=tmp_path / "whole", **{**options, "iterations": 300})
    for other in (py_dir, cli_dir):
        assert read(other, "posterior.json") == read(whole.run_dir, "posterior.json")
        assert metrics(other) == metrics(whole.run_dir)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda x, y: vi.logistic_regression(x, y, family="normal"), ConfigError, "family = 'normal'"),
        (lambda x, y: vi.logistic_regression(x, y, method="newton"), ConfigError, "method = 'newton'"),
        (lambda x, y: vi.logistic_regression(x, y, family="gaussian", method="mcef"), ConfigError,
         'train.method = "mcef"'),
        (lambda x, y: vi.logistic_regression(x, y, prior_scale=0.0), ConfigError, "model.prior_scale"),
        (lambda x, y: vi.logistic_regression(x, y, iterations=0), ConfigError, "train.iterations"),
        (lambda x, y: vi.logistic_regression(x, y, X_test=x), ConfigError, "X_test and y_test"),
        (lambda x, y: vi.logistic_regression(x[:, 0], y), DataError, "X: expected a 2-D array"),
        (lambda x, y: vi.logistic_regression(np.where(x > 2, np.nan, x), y), DataError, "X: row"),
        (lambda x, y: vi.logistic_regression(x, y[1:]), DataError, "y: 29 labels for the 30 rows of X"),
        (lambda x, y: vi.logistic_regression(x, y + 1), DataError, "y: row 1 (data row 1): label 2"),
        (lambda x, y: vi.logistic_regression(x, np.where(y == 0, -1, 0)), DataError, "mixes 0 and −1"),
        (lambda x, y: vi.logistic_regression(x, y, X_test=x[:, :1], y_test=y), DataError,
         "X_test has 1 columns"),
    ],
)
def test_bad_inputs_name_the_argument(call, error, words):
    x, y = draw(30, 7)
    x[0] = [5.0, 0.0]
    y[0] = 1
    with pytest.raises(error) as raised:
        call(x, y)
    assert words in str(raised.value), str(raised.value)


def test_predict_checks_its_input():
    x, y = draw(40, 8)
    q = vi.logistic_regression(x, y, "gaussian", iterations=50, final_draws=100)
    with pytest.raises(DataError, match="X has 3 columns; the posterior was fitted on 2"):
        q.predict_proba(np.zeros((4, 3)))
    with pytest.raises(ConfigError, match="draws = 0"):
        q.predict_proba(x, draws=0)
