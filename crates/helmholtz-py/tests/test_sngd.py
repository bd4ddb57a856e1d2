"""helmholtz.sngd.fit: maximum-likelihood fits of arrays in run directories the command line
makes. Known parameters are recovered within 4 asymptotic standard errors (√((H⁻¹)_ii / n), H
the Hessian of the mean NLL per row at the fit, by central differences of a log-likelihood
written here in numpy, independently of the library); a Python run and a `helmholtz mle` run
of the same data and config are identical (parameters, metrics except seconds); each resumes
the other's run bit for bit; Ctrl-C leaves a checkpoint that resumes exactly; bad inputs raise
the package's exceptions naming the argument."""

from __future__ import annotations

import math
import os
import pickle
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from cli_binary import metrics, read, run_cli
from estimates import standard_errors
from helmholtz import ConfigError, DataError, sngd

LGAMMA = np.vectorize(math.lgamma)
ERFC = np.vectorize(math.erfc)


def assert_recovered(names, fitted, truth, se):
    z = np.abs(np.asarray(fitted) - np.asarray(truth)) / se
    table = "\n".join(f"{n}: truth {t:.5f}, fitted {f:.5f}, |error|/SE {e:.2f}"
                      for n, t, f, e in zip(names, truth, fitted, z))
    assert z.max() <= 4.0, table


def nb_mean_nll(counts):
    """The negative binomial's mean NLL at (r, s), P(x) = Γ(x + r)/(Γ(r) x!) s^r (1 − s)^x."""
    log_factorial = LGAMMA(counts + 1.0)

    def f(theta):
        r, s = theta
        return -np.mean(LGAMMA(counts + r) - math.lgamma(r) - log_factorial
                        + r * math.log(s) + counts * math.log1p(-s))

    return f


def skew_normal_draws(xi, omega, eta, n, rng):
    """SN(ξ, Ω, η), density 2 N(x; ξ, Ω) Φ(ηᵀ(x − ξ)): v ~ N(0, Ω) kept when u ≤ ηᵀv for
    u ~ N(0, 1), else −v (the density of the result is 2 φ(v) Φ(ηᵀv))."""
    v = rng.multivariate_normal(np.zeros(len(xi)), omega, size=n)
    u = rng.normal(size=n)
    v[u > v @ eta] *= -1
    return xi + v


def skew_normal_mean_nll(x, d):
    """Mean NLL of SN at (ξ, vech Ω, η)."""

    def unpack(theta):
        xi = theta[:d]
        omega = np.zeros((d, d))
        k = d
        for a in range(d):
            for b in range(a + 1):
                omega[a, b] = omega[b, a] = theta[k]
                k += 1
        return xi, omega, theta[k:k + d]

    def f(theta):
        xi, omega, eta = unpack(theta)
        z = x - xi
        sign, log_det = np.linalg.slogdet(omega)
        quad = np.einsum("ij,ij->i", z @ np.linalg.inv(omega), z)
        log_phi = np.log(0.5 * ERFC(-(z @ eta) / math.sqrt(2)))
        return -np.mean(math.log(2) - 0.5 * (d * math.log(2 * math.pi) + log_det + quad) + log_phi)

    return f


def skew_vector(params):
    d = len(params["xi"])
    vech = [params["omega"][a, b] for a in range(d) for b in range(a + 1)]
    return np.concatenate([params["xi"], vech, params["eta"]])


def test_negative_binomial_recovered_within_four_standard_errors():
    # NB(5, 1/11), n = 1000: SNGD's grid line search reaches the MLE in a few steps.
    rng = np.random.default_rng(1)
    counts = rng.negative_binomial(5, 1 / 11, size=1000)
    result = sngd.fit(counts, family="negative-binomial", iterations=15)
    fitted = [result.params["r"], result.params["s"]]
    f = nb_mean_nll(counts.astype(float))
    se = standard_errors(f, fitted, len(counts))
    assert_recovered(["r", "s"], fitted, [5.0, 1 / 11], se)
    # The library's NLL is the one written here, and nll() of the training rows is train_nll.
    assert result.train_nll == pytest.approx(f(fitted), rel=1e-12)
    assert result.nll(counts) == pytest.approx(result.train_nll, rel=1e-14)
    assert result.trace.steps[-1] == 15 and result.trace.metric("train_nll").shape == (16,)
    draws = result.sample(4000, random_state=3)
    assert draws.dtype == np.int64 and draws.shape == (4000,)
    # The draws' mean r(1 − s)/s ≈ 50 within 4 standard errors of a mean of 4000 draws.
    mean = result.params["mean"]
    assert abs(draws.mean() - mean) < 4 * math.sqrt(mean / result.params["s"] / 4000)
    assert np.array_equal(draws, result.sample(4000, random_state=3))


def test_skew_normal_recovered_within_four_standard_errors():
    rng = np.random.default_rng(2)
    xi, omega, eta = np.array([1.0, -0.5]), np.array([[1.0, 0.3], [0.3, 1.5]]), np.array([2.0, -1.0])
    x = skew_normal_draws(xi, omega, eta, 3000, rng)
    result = sngd.fit(x, family="skew-normal", iterations=150, eval_every=10, lr_theta=1.0,
                      search="decrease", coordinates="centred", lambda_step="quasi-newton")
    fitted = skew_vector(result.params)
    f = skew_normal_mean_nll(x, 2)
    truth = skew_vector({"xi": xi, "omega": omega, "eta": eta})
    assert result.train_nll == pytest.approx(f(fitted), rel=1e-10)
    se = standard_errors(f, fitted, len(x))
    assert_recovered(["xi0", "xi1", "om00", "om10", "om11", "eta0", "eta1"], fitted, truth, se)
    # The fit is a minimum: no coordinate step of 0.1 SE lowers the NLL.
    for i in range(len(fitted)):
        for sign in (-1, 1):
            moved = fitted.copy()
            moved[i] += sign * 0.1 * se[i]
            assert f(moved) >= f(fitted) - 1e-9


@pytest.mark.parametrize(
    "family, extra",
    [
        ("negative-binomial", {"iterations": 8}),
        ("skew-normal", {"iterations": 40, "eval_every": 5, "batch": 64, "transform": "standardize"}),
    ],
)
def test_python_run_is_the_cli_run_and_each_resumes_the_other(tmp_path, family, extra):
    rng = np.random.default_rng(4)
    if family == "negative-binomial":
        data = rng.negative_binomial(3, 0.2, size=300)
        test = rng.negative_binomial(3, 0.2, size=100)
        np.save(tmp_path / "data.npy", data.astype(np.float64).reshape(-1, 1))
        np.save(tmp_path / "test.npy", test.astype(np.float64).reshape(-1, 1))
    else:
        data = skew_normal_draws(np.zeros(3), np.eye(3), np.array([1.0, 0.0, -2.0]), 400, rng)
        test = skew_normal_draws(np.zeros(3), np.eye(3), np.array([1.0, 0.0, -2.0]), 100, rng)
        np.save(tmp_path / "data.npy", data)
        np.save(tmp_path / "test.npy", test)
    keys = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in extra.items() if k != "transform")
    transform = f'transform = "{extra["transform"]}"' if "transform" in extra else ""
    config = tmp_path / "c.toml"
    config.write_text(
        f'name = "cli"\nseed = 7\n[data]\ntrain = "data.npy"\ntest = "test.npy"\n{transform}\n'
        f'[model]\nfamily = "{family}"\n[train]\n{keys}\n'
    )
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "py"
    run_cli("mle", config, "--out", cli_dir, "--quiet")
    result = sngd.fit(data, family, test=test, random_state=7, run_dir=py_dir, **extra)
    assert read(cli_dir, "params.json") == read(py_dir, "params.json")
    assert metrics(cli_dir) == metrics(py_dir)
    for key in ("train_nll", "test_nll", "steps", "rows"):
        assert read(cli_dir, "summary.json")[key] == read(py_dir, "summary.json")[key]
    # helmholtz eval on the Python run: the mean NLL of a file, as nll() gives for the array.
    out = run_cli("eval", py_dir, "--data", tmp_path / "test.npy")
    assert f"NLL {result.nll(test):.6f} nats per row" in out
    assert result.nll(test) == result.test_nll

    # Each side extends the other's run to twice the steps; both equal an uninterrupted run.
    steps = 2 * extra["iterations"]
    run_cli("mle", "--resume", py_dir, "--set", f"train.iterations={steps}", "--quiet")
    sngd.resume(cli_dir, iterations=steps)
    whole = sngd.fit(data, family, test=test, random_state=7, run_dir=tmp_path / "whole",
                     **{**extra, "iterations": steps})
    for other in (py_dir, cli_dir):
        assert read(other, "params.json") == read(whole.run_dir, "params.json")
        assert metrics(other) == metrics(whole.run_dir)
    assert sngd.load(py_dir).steps == steps


def test_a_moved_run_keeps_its_data_and_a_pickled_result_its_run(tmp_path):
    rng = np.random.default_rng(5)
    counts = rng.negative_binomial(4, 0.3, size=200)
    result = sngd.fit(counts, family="negative-binomial", iterations=3, run_dir=tmp_path / "a")
    assert (tmp_path / "a" / "data" / "train.npy").is_file()
    shutil.move(tmp_path / "a", tmp_path / "b")
    moved = sngd.resume(tmp_path / "b", iterations=6)
    assert moved.steps == 6
    in_place = sngd.fit(counts, family="negative-binomial", iterations=6, run_dir=tmp_path / "c")
    assert moved.params == in_place.params
    temporary = sngd.fit(counts, family="negative-binomial", iterations=3)
    back = pickle.loads(pickle.dumps(temporary))
    assert back.run_dir != temporary.run_dir and back.params == temporary.params
    assert back.nll(counts) == temporary.nll(counts)
    assert result.steps == 3


def test_threads_do_not_change_the_fit():
    rng = np.random.default_rng(6)
    x = skew_normal_draws(np.zeros(2), np.eye(2), np.array([3.0, 0.0]), 300, rng)
    fits = [sngd.fit(x, "skew-t", iterations=20, batch=50, n_threads=t) for t in (1, 2)]
    assert read(fits[0].run_dir, "params.json") == read(fits[1].run_dir, "params.json")
    assert [r["train_nll"] for r in fits[0].trace] == [r["train_nll"] for r in fits[1].trace]


def test_ctrl_c_leaves_a_checkpoint_that_resumes_exactly(tmp_path):
    rng = np.random.default_rng(8)
    counts = rng.negative_binomial(5, 0.1, size=1000)
    # A long fit interrupted once it has logged its first evaluation: KeyboardInterrupt, and
    # the checkpoint.
    def interrupt():
        while not (tmp_path / "cut" / "metrics.jsonl").is_file():
            time.sleep(0.01)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=interrupt)
    watcher.start()
    with pytest.raises(KeyboardInterrupt):
        sngd.fit(counts, family="negative-binomial", iterations=100_000, run_dir=tmp_path / "cut")
    watcher.join()
    state = read(tmp_path / "cut" / "checkpoints" / "last", "state.json")["state"]
    done = state["step"]
    assert 0 < done < 100_000
    resumed = sngd.resume(tmp_path / "cut", iterations=done + 3)
    whole = sngd.fit(counts, family="negative-binomial", iterations=done + 3, run_dir=tmp_path / "whole")
    assert resumed.params == whole.params
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: sngd.fit(np.arange(10), family="poisson"), ConfigError, "family = 'poisson'"),
        (lambda: sngd.fit(np.arange(10), method="newton"), ConfigError, "method = 'newton'"),
        (lambda: sngd.fit(np.ones((20, 2)), family="skew-normal", method="bfgs"), ConfigError,
         "train.method"),
        (lambda: sngd.fit(np.arange(10), iterations=0), ConfigError, "train.iterations = 0"),
        (lambda: sngd.fit(np.arange(10), family="nb-mixture"), ConfigError, "model.components"),
        (lambda: sngd.fit(np.arange(10), lr_theta=0.5), ConfigError, "lr_theta"),
        (lambda: sngd.fit(np.arange(10), random_state=-1), ConfigError, "random_state"),
        (lambda: sngd.fit(np.ones((10, 2))), DataError, "data: the negative-binomial family models one column"),
        (lambda: sngd.fit([1, 2, -3, 4]), DataError, "data: row 3, column x1: -3 is not a count"),
        (lambda: sngd.fit([1.5, 2, 3]), DataError, "data: row 1, column x1: 1.5 is not a count"),
        (lambda: sngd.fit([1, np.nan, 3]), DataError, "data: row 1 (0-based) is nan"),
        (lambda: sngd.fit(np.ones(10), family="skew-normal"), DataError, "data: expected a 2-D array"),
        (lambda: sngd.fit(["a", "b"]), DataError, "data: expected numbers"),
        (lambda: sngd.fit(np.random.default_rng(0).normal(size=(30, 2)), family="skew-normal",
                          test=np.zeros((5, 3))), DataError, "test has 3 columns"),
        (lambda: sngd.fit(np.column_stack([np.arange(30.0), np.ones(30)]), family="skew-normal"),
         DataError, "column x2 is constant"),
        (lambda: sngd.fit(np.random.default_rng(0).random((30, 2)) + 0.5, family="t-copula"),
         DataError, "strictly between 0 and 1"),
    ],
)
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error, match=None) as raised:
        call()
    assert words in str(raised.value), str(raised.value)


def test_a_fit_that_is_refused_writes_nothing(tmp_path):
    with pytest.raises(DataError):
        sngd.fit([1, -2, 3], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    result = sngd.fit([1, 2, 3, 4, 5, 9], iterations=2, run_dir=tmp_path / "used")
    with pytest.raises(ConfigError, match="already holds a run"):
        sngd.fit([1, 2, 3], run_dir=result.run_dir)
    with pytest.raises(ConfigError, match="n = 0"):
        result.sample(0)
