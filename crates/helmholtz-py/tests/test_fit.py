"""The entropy-sum estimators (PPCA, FactorAnalysis, GaussianMixture, BernoulliMixture,
GaussianVAE): their numbers against closed forms and scikit-learn, the ELBO = entropy-sum
identity at convergence (and the reason where it does not apply), the run directory against the
command line's, bad inputs, scikit-learn's estimator checks and pickling."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sklearn.decomposition
import sklearn.mixture
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from cli_binary import json_lines, without_timings
from cli_binary import run_cli as cli

import helmholtz
from helmholtz import _core
from helmholtz import (
    PPCA,
    BernoulliMixture,
    FactorAnalysis,
    GaussianMixture,
    GaussianVAE,
)



def metrics(run: Path) -> list:
    return json_lines(run / "metrics.jsonl")


def summary(run: Path) -> dict:
    return without_timings(json.loads((run / "summary.json").read_text()))


@pytest.fixture(scope="module")
def ppca_data():
    """600 rows from a PPCA model: 2 latents, 6 dimensions, noise variance 0.09, mean 1."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 2))
    return rng.normal(size=(600, 2)) @ w.T + 0.3 * rng.normal(size=(600, 6)) + 1.0


@pytest.fixture(scope="module")
def clusters():
    """900 rows around three well-separated centres in 3 dimensions, correlated within."""
    rng = np.random.default_rng(1)
    centres = np.array([[-4.0, 0.0, 1.0], [3.0, 3.0, -2.0], [2.0, -4.0, 3.0]])
    mix = np.array([[1.0, 0.5, 0.0], [0.0, 0.8, 0.3], [0.2, 0.0, 0.6]])
    z = rng.normal(size=(900, 3)) @ mix
    return centres[np.arange(900) % 3] + z


def gaussian_log_pdf(X, mean, cov):
    d = X.shape[1]
    chol = np.linalg.cholesky(cov)
    solved = np.linalg.solve(chol, (X - mean).T)
    return -0.5 * (d * np.log(2 * np.pi) + 2 * np.log(np.diag(chol)).sum() + (solved**2).sum(0))


# -- numbers against closed forms and scikit-learn ---------------------------------------


def test_ppca_is_the_maximum_likelihood_solution_and_matches_sklearn(ppca_data):
    X = ppca_data
    n = len(X)
    ours = PPCA(n_components=2).fit(X)
    theirs = sklearn.decomposition.PCA(n_components=2).fit(X)
    # scikit-learn estimates the covariance with 1/(n − 1); the maximum-likelihood PPCA uses
    # 1/n: the same principal axes, the model covariance scaled by (n − 1)/n.
    np.testing.assert_allclose(
        ours.get_covariance(), theirs.get_covariance() * (n - 1) / n, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(ours.mean_, X.mean(0), rtol=1e-12)
    # score_samples is log N(x; μ, WWᵀ + σ²I), row by row (1e-10).
    np.testing.assert_allclose(
        ours.score_samples(X), gaussian_log_pdf(X, ours.mean_, ours.get_covariance()), rtol=1e-10
    )
    # The ML fit scores its own data at least as well as sklearn's, and within its 1/n bias
    # (stated tolerance: 1e-4 relative).
    assert ours.score(X) >= theirs.score(X)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-4)
    # The closed form is a stationary point: the ELBO equals the entropy sum.
    decomposition = ours.entropy_sum()
    assert decomposition["identity_applies"] is True
    assert abs(decomposition["relative_gap"]) < 1e-10
    assert decomposition["elbo"] == pytest.approx(ours.score(X), rel=1e-10)
    assert "stationary point" in decomposition["why"]
    # EM from a random start reaches the same likelihood (1e-8 relative).
    em = PPCA(n_components=2, method="default", max_steps=5000, tol=1e-13).fit(X)
    assert em.score(X) == pytest.approx(ours.score(X), rel=1e-8)
    assert em.n_iter_ > 10 and ours.n_iter_ == 0


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_a_component_without_spread_breaks_the_identity_and_says_so(clusters, covariance):
    # One cluster is flat along the last coordinate: its variance there is held at the floor,
    # EM converges to a point that is not the ELBO's, and the decomposition says why.
    X = clusters.copy()
    X[::3, 2] = 1.0
    ours = GaussianMixture(3, covariance=covariance, max_steps=5000, tol=1e-12, random_state=1)
    decomposition = ours.fit(X).entropy_sum()
    assert ours.converged_
    assert decomposition["identity_applies"] is False
    assert "variance floor" in decomposition["why"], decomposition["why"]
    assert abs(decomposition["relative_gap"]) > 1e-4


def test_factor_analysis_matches_sklearn_at_convergence(ppca_data):
    rng = np.random.default_rng(2)
    X = ppca_data * rng.uniform(0.5, 2.0, size=6)  # unequal noise per column
    ours = FactorAnalysis(n_components=2, max_steps=20000, tol=1e-13).fit(X)
    theirs = sklearn.decomposition.FactorAnalysis(
        n_components=2, tol=1e-12, max_iter=100000, svd_method="lapack"
    ).fit(X)
    # Both at the maximum likelihood (stated tolerances: 1e-7 relative on the mean score, 1e-5
    # per row, 1e-3 on the noise variances and the model covariance: EM for factor analysis
    # creeps along a flat ridge, and scikit-learn's stops by its own rule).
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-7)
    np.testing.assert_allclose(ours.noise_variance_, theirs.noise_variance_, rtol=1e-3)
    np.testing.assert_allclose(ours.get_covariance(), theirs.get_covariance(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-5)
    assert ours.components_.shape == (2, 6) and ours.transform(X).shape == (600, 2)
    decomposition = ours.entropy_sum()
    assert decomposition["identity_applies"] and abs(decomposition["relative_gap"]) < 1e-6


@pytest.mark.parametrize("covariance,sklearn_type", [("full", "full"), ("diagonal", "diag")])
def test_gaussian_mixtures_match_sklearn(clusters, covariance, sklearn_type):
    X = clusters
    # EM starts its components at C training rows drawn with the seed and stops at the local
    # maximum it reaches: seed 1 starts one in each cluster (seed 0 puts two in one cluster and
    # stops lower; scikit-learn's k-means start avoids that).
    ours = GaussianMixture(3, covariance=covariance, max_steps=5000, tol=1e-12, random_state=1)
    ours.fit(X)
    theirs = sklearn.mixture.GaussianMixture(
        3, covariance_type=sklearn_type, tol=1e-12, max_iter=5000, reg_covar=0.0, random_state=0
    ).fit(X)
    order = np.argsort(ours.means_[:, 0])
    other = np.argsort(theirs.means_[:, 0])
    # The same maximum (stated tolerances: 1e-8 on the score, 1e-5 on the parameters).
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-8)
    np.testing.assert_allclose(ours.weights_[order], theirs.weights_[other], rtol=1e-5)
    np.testing.assert_allclose(ours.means_[order], theirs.means_[other], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        ours.covariances_[order], theirs.covariances_[other], rtol=1e-5, atol=1e-8
    )
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X).sum(1), 1.0, rtol=1e-12)
    # Our maximum is a fixed point of scikit-learn's EM: started there, it stays.
    precisions = (
        np.linalg.inv(ours.covariances_) if covariance == "full" else 1.0 / ours.covariances_
    )
    restarted = sklearn.mixture.GaussianMixture(
        3, covariance_type=sklearn_type, tol=1e-14, max_iter=50, reg_covar=0.0,
        weights_init=ours.weights_, means_init=ours.means_, precisions_init=precisions,
    ).fit(X)
    np.testing.assert_allclose(restarted.means_, ours.means_, rtol=1e-6, atol=1e-9)
    assert restarted.score(X) == pytest.approx(ours.score(X), rel=1e-10)
    relabel = np.empty(3, dtype=int)
    relabel[order] = other
    np.testing.assert_array_equal(relabel[ours.predict(X)], theirs.predict(X))
    assert ours.converged_
    decomposition = ours.entropy_sum()
    assert decomposition["identity_applies"] and abs(decomposition["relative_gap"]) < 1e-8
    draws, components = ours.sample(3000, random_state=5)
    assert draws.shape == (3000, 3) and components.shape == (3000,)
    np.testing.assert_allclose(np.bincount(components, minlength=3) / 3000, ours.weights_, atol=0.04)


def test_bernoulli_mixture_recovers_its_prototypes():
    rng = np.random.default_rng(3)
    prototypes = np.array(
        [[0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.8, 0.2], [0.1, 0.1, 0.9, 0.9, 0.9, 0.1, 0.2, 0.8]]
    )
    labels = rng.integers(0, 2, size=2000)
    X = (rng.uniform(size=(2000, 8)) < prototypes[labels]).astype(float)
    model = BernoulliMixture(2, max_steps=3000, tol=1e-12).fit(X)
    order = np.argsort(model.means_[:, 0])[::-1]
    np.testing.assert_allclose(model.means_[order], prototypes, atol=0.05)
    assert abs(model.entropy_sum()["relative_gap"]) < 1e-8
    # Probabilities in [0, 1] without a threshold: drawn once; with one: X > threshold.
    grey = np.clip(X * 0.8 + 0.1, 0, 1)
    assert BernoulliMixture(2, threshold=None).fit(grey).score(grey) < 0
    with pytest.raises(ValueError, match=r"X holds values outside \[0, 1\]"):
        BernoulliMixture(2, threshold=None).fit(X * 2)


@pytest.mark.parametrize("variant", [1, 2, 3])
def test_vaes_train_and_decompose_their_elbo(variant):
    # The digits' 17 grey levels spread over their bins, so that no pixel is constant.
    digits = helmholtz.datasets.load_digits()[0][:300].astype(np.float64)
    X = (16 * digits + np.random.default_rng(0).uniform(size=digits.shape)) / 17
    vae = GaussianVAE(
        variant=variant,
        n_components=3,
        hidden=(16,),
        epochs=15,
        batch_size=50,
        lr=3e-3,
        random_state=1,
    ).fit(X)
    records = [r for r in metrics(vae.run_dir_) if "elbo" in r]
    assert len(records) == 15 and records[-1]["elbo"] > records[0]["elbo"] + 5
    decomposition = vae.entropy_sum()
    assert decomposition["identity_applies"] is True and decomposition["log_likelihood"] is None
    assert decomposition["elbo"] == pytest.approx(
        decomposition["posterior_entropy"]
        - decomposition["prior_entropy"]
        - decomposition["observable_entropy"]
        + decomposition["gap"],
        rel=1e-12,
    )
    # score is the mean ELBO with per-row draws; the decomposition's uses the run's draws: the
    # same quantity within Monte Carlo error.
    scores = vae.score_samples(X)
    se = scores.std() / np.sqrt(len(scores))
    assert abs(scores.mean() - decomposition["elbo"]) < 6 * se + 0.5
    # A row's ELBO does not depend on the batch it is scored in.
    assert vae.score_samples(X[7:8])[0] == scores[7]
    assert vae.transform(X).shape == (300, 3)
    assert vae.sample(4).shape == (4, 64)
    if variant == 2:
        assert vae.prior_variances_.shape == (3,)
    if variant == 3:
        assert vae.noise_variance_ is None
    else:
        assert vae.noise_variance_ > 0


def test_a_fixed_noise_variance_is_reported_as_breaking_the_identity(ppca_data):
    model = PPCA(2, method="default", fixed_noise=1.0, max_steps=300).fit(ppca_data)
    decomposition = model.entropy_sum(ppca_data)
    assert decomposition["identity_applies"] is False
    assert "observation variance is fixed" in decomposition["why"]
    assert abs(decomposition["relative_gap"]) > 1e-3


# -- the run directory is the command line's --------------------------------------------


@pytest.mark.parametrize(
    "estimator,model_file",
    [
        (PPCA(2, method="default", max_steps=200), "model.json"),
        (GaussianMixture(3, max_steps=100, data_transform="standardize"), "model.json"),
        (GaussianVAE(1, n_components=2, hidden=(8,), epochs=3, batch_size=100), "model.safetensors"),
    ],
    ids=["ppca-em", "gmm-standardized", "vae-1"],
)
def test_python_and_cli_runs_are_the_same(estimator, model_file, clusters, tmp_path):
    X = clusters[:400]
    folder = tmp_path / "config"
    (folder / "data").mkdir(parents=True)
    np.save(folder / "data" / "train.npy", X)
    (folder / "fit.toml").write_text(estimator.config(seed=7))
    cli("fit", folder / "fit.toml", "--out", tmp_path / "cli", "--quiet")
    estimator.set_params(random_state=7, run_dir=tmp_path / "py").fit(X)
    assert (tmp_path / "py" / model_file).read_bytes() == (tmp_path / "cli" / model_file).read_bytes()
    assert metrics(tmp_path / "py") == metrics(tmp_path / "cli")
    assert summary(tmp_path / "py") == summary(tmp_path / "cli")
    # `helmholtz eval RUN --data FILE` on the Python run reports the estimator's score.
    out = cli("eval", tmp_path / "py", "--data", folder / "data" / "train.npy")
    if model_file == "model.json":
        printed = float(re.search(r"log-likelihood (-?[\d.]+) nats per point", out).group(1))
        assert printed == pytest.approx(estimator.score(X), abs=2e-6)
    else:
        printed = float(re.search(r"ELBO (-?[\d.]+) nats per point", out).group(1))
        assert printed == pytest.approx(estimator.entropy_sum(X)["elbo"], abs=2e-6)


def test_the_cli_continues_a_python_run_bit_for_bit(clusters, tmp_path):
    X = clusters[:300]
    short = FactorAnalysis(2, max_steps=20, tol=0.0, run_dir=tmp_path / "short").fit(X)
    assert short.n_iter_ == 20
    cli("fit", "--resume", tmp_path / "short", "--set", "train.max_steps=60", "--quiet")
    FactorAnalysis(2, max_steps=60, tol=0.0, run_dir=tmp_path / "whole").fit(X)
    assert (tmp_path / "short" / "model.json").read_bytes() == (
        tmp_path / "whole" / "model.json"
    ).read_bytes()
    # The directory moves with its data.
    shutil.move(tmp_path / "short", tmp_path / "moved")
    cli("eval", tmp_path / "moved", "--entropy")


# -- bad inputs -------------------------------------------------------------------------


def test_bad_inputs_raise_errors_that_name_the_argument(ppca_data, tmp_path):
    X = ppca_data
    with pytest.raises(ValueError, match="n_components = 6"):
        PPCA(6).fit(X)
    with pytest.raises(ValueError, match="n_components = 0"):
        FactorAnalysis(0).fit(X)
    with pytest.raises(ValueError, match="covariance = 'spherical'"):
        GaussianMixture(2, covariance="spherical").fit(X)
    with pytest.raises(ValueError, match="variant = 4"):
        GaussianVAE(variant=4).fit(X)
    with pytest.raises(ValueError, match="optimal_variances"):
        GaussianVAE(variant=3, optimal_variances=True).fit(X)
    with pytest.raises(ValueError, match="method = 'newton'"):
        PPCA(2, method="newton").fit(X)
    with pytest.raises(ValueError, match="data_transform = 'log'"):
        PPCA(2, data_transform="log").fit(X)
    with pytest.raises(ValueError, match="random_state = -1"):
        PPCA(2, random_state=-1).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        PPCA(2).fit(np.where(np.eye(600, 6) > 0, np.nan, X))
    with pytest.raises(ValueError, match="1 sample"):
        PPCA(1).fit(X[:1])
    # A constant column: the library names it and what to do.
    constant = X.copy()
    constant[:, 3] = 2.0
    with pytest.raises(helmholtz.DataError, match="data column 4 is constant"):
        FactorAnalysis(2).fit(constant)
    fitted = PPCA(2).fit(X)
    with pytest.raises(ValueError, match="6 features"):
        fitted.score(X[:, :5])
    with pytest.raises(ValueError, match="n_samples = 0"):
        fitted.sample(0)
    with pytest.raises(NotFittedError):
        PPCA(2).score(X)
    # A run directory that holds a run is refused, and left as it was.
    PPCA(2, run_dir=tmp_path / "run").fit(X)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(helmholtz.ConfigError, match="already holds a run"):
        PPCA(2, run_dir=tmp_path / "run").fit(X)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


# -- scikit-learn's estimator checks and pickling ---------------------------------------

ESTIMATORS = [
    PPCA(),
    FactorAnalysis(),
    GaussianMixture(),
    GaussianMixture(covariance="diagonal"),
    BernoulliMixture(),
    GaussianVAE(hidden=(8,), epochs=5),
]


# No check is skipped here: scikit-learn skips `check_array_api_input` itself when
# SCIPY_ARRAY_API is not set (its tests need array-api libraries); every other check runs and
# passes.
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [PPCA(2), FactorAnalysis(2), GaussianMixture(3), BernoulliMixture(2),
     GaussianVAE(2, hidden=(8,), epochs=3)],
    ids=lambda e: type(e).__name__,
)
def test_pickling_a_fitted_estimator_round_trips(estimator, clusters):
    X = clusters[:300] if not isinstance(estimator, BernoulliMixture) else (clusters[:300] > 0) * 1.0
    estimator.fit(X)
    copy = pickle.loads(pickle.dumps(estimator))
    assert copy.run_dir_ != estimator.run_dir_
    assert copy.score(X) == estimator.score(X)
    assert copy.entropy_sum() == estimator.entropy_sum()
    np.testing.assert_array_equal(copy.score_samples(X[:10]), estimator.score_samples(X[:10]))


def test_ctrl_c_during_a_fit_checkpoints_and_raises_keyboard_interrupt(clusters, tmp_path):
    """Ctrl-C reaches a fit running in the pool (the main thread watches for it): the fit stops
    after its step with a checkpoint and KeyboardInterrupt is raised."""
    np.save(tmp_path / "x.npy", clusters[:300])
    run_dir = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from helmholtz import GaussianMixture, _core
        X = np.load({str(tmp_path / 'x.npy')!r})
        estimator = GaussianMixture(3, max_steps=10**8, tol=0.0, random_state=1)
        def progress(event, info):
            print("LINE", flush=True)
        try:
            _core.FitRun.create(estimator.config(), {str(run_dir)!r}, X, progress)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            raise
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    assert line.startswith("LINE"), line + process.stderr.read()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert "INTERRUPTED" in out, out + err
    assert "KeyboardInterrupt" in err
    assert process.returncode != 0
    assert (run_dir / "checkpoints" / "last").is_dir()


def test_an_interrupted_python_fit_is_checkpointed_and_the_cli_finishes_it(clusters, tmp_path):
    """An exception in the progress callback (as Ctrl-C, which the same path turns into a stop)
    ends the fit after its step with a checkpoint; `helmholtz fit --resume` continues it to the
    uninterrupted run's model, bit for bit."""
    X = clusters[:300]
    estimator = GaussianMixture(3, max_steps=40, tol=0.0, random_state=1)
    lines = []

    def progress(event, info):
        lines.append(info["text"])
        if len(lines) == 5:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        _core.FitRun.create(estimator.config(), os.fspath(tmp_path / "cut"), X, progress)
    assert (tmp_path / "cut" / "checkpoints" / "last").is_dir()
    assert len(metrics(tmp_path / "cut")) < 41
    cli("fit", "--resume", tmp_path / "cut", "--quiet")
    estimator.set_params(run_dir=tmp_path / "whole").fit(X)
    assert (tmp_path / "cut" / "model.json").read_bytes() == (
        tmp_path / "whole" / "model.json"
    ).read_bytes()
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")
