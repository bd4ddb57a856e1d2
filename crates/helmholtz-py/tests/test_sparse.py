"""SparseCoding: recovery of the bars, each row's own posterior and ELBO under the learned
model, denoising, annealing and amortized posteriors, the run directory against `helmholtz
sparse`, bad inputs, scikit-learn's estimator checks and pickling."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from cli_binary import json_lines, run_cli, without_timings

from helmholtz import SparseCoding, _core
from helmholtz.datasets import make_bars

# The library's recovery threshold (helmholtz_experiments::sparse::RECOVERY_COSINE): a true
# field counts as recovered when a distinct learned atom has |cosine| ≥ 0.95 with it.
RECOVERY_COSINE = 0.95


@pytest.fixture(scope="module")
def bars():
    """4 × 4 bars (8 generating fields), 500 images, noise 0.1."""
    X, fields, latents = make_bars(side=4, n=500, noise=0.1, random_state=0)
    return X.astype(np.float64), fields, latents


@pytest.fixture(scope="module")
def fitted(bars):
    """The paper's bars fit (full posteriors, full-batch L-BFGS), smaller. Like the paper's, a
    fit can stop at a local optimum; seeds 0–3 of this size all recover the 8 fields."""
    X, _, _ = bars
    return SparseCoding(n_components=8, posterior="full", tol_grad=1e-4, random_state=0).fit(X)


def test_full_posteriors_recover_the_bars(bars, fitted):
    X, fields, _ = bars
    scores = _core.match_fields(fitted.components_, fields)
    assert min(scores) >= RECOVERY_COSINE, scores
    np.testing.assert_allclose(np.linalg.norm(fitted.components_, axis=1), 1.0, rtol=1e-6)
    # σ² near the generating noise variance 0.01, and the run's summary agrees.
    assert fitted.noise_variance_ == pytest.approx(0.01, rel=0.3)
    summary = json.loads((fitted.run_dir_ / "summary.json").read_text())
    assert summary["sigma2"] == pytest.approx(fitted.noise_variance_, rel=1e-6)
    assert fitted.n_iter_ == summary["iterations"] > 10


def test_an_f32_history_reaches_the_f64_fit(bars, fitted):
    """The L-BFGS pairs stored in f32 (``train.history_precision``): the same bars fit ends at
    the f64 memory's optimum to the tolerance, with every field recovered."""
    X, fields, _ = bars
    single = SparseCoding(
        n_components=8, posterior="full", tol_grad=1e-4, history_precision="f32", random_state=0
    ).fit(X)
    assert "history_precision = \"f32\"" in (single.run_dir_ / "config.toml").read_text()
    assert min(_core.match_fields(single.components_, fields)) >= RECOVERY_COSINE
    ours = json.loads((single.run_dir_ / "summary.json").read_text())
    theirs = json.loads((fitted.run_dir_ / "summary.json").read_text())
    assert ours["objective"] == pytest.approx(theirs["objective"], abs=1e-4)


def test_a_posterior_scale_reaches_the_plain_fit(bars, fitted):
    """The posteriors handed to L-BFGS divided by 3 (``train.posterior_scale``, a diagonal
    preconditioner): the same bars fit by another path, to the same optimum and fields."""
    X, fields, _ = bars
    scaled = SparseCoding(
        n_components=8, posterior="full", tol_grad=1e-4, posterior_scale=3.0, random_state=0
    ).fit(X)
    assert "posterior_scale = 3.0" in (scaled.run_dir_ / "config.toml").read_text()
    assert min(_core.match_fields(scaled.components_, fields)) >= RECOVERY_COSINE
    ours = json.loads((scaled.run_dir_ / "summary.json").read_text())
    theirs = json.loads((fitted.run_dir_ / "summary.json").read_text())
    assert ours["objective"] == pytest.approx(theirs["objective"], abs=1e-4)


def test_each_row_gets_its_own_posterior_and_elbo(bars, fitted):
    X, fields, latents = bars
    means, covariances = fitted.transform(X[:40], return_covariance=True)
    assert means.shape == (40, 8) and covariances.shape == (40, 8, 8)
    np.testing.assert_allclose(covariances, covariances.transpose(0, 2, 1), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(covariances) > 0)
    # Each row alone, and in another order, gets the same posterior and ELBO.
    alone, alone_cov = fitted.transform(X[5:6], return_covariance=True)
    np.testing.assert_array_equal(alone[0], means[5])
    np.testing.assert_array_equal(alone_cov[0], covariances[5])
    elbos = fitted.score_samples(X[:40])
    np.testing.assert_array_equal(fitted.score_samples(X[:40][::-1])[::-1], elbos)
    # The posterior means of all rows find the generating latents (up to order and scale).
    all_means = fitted.transform(X)
    np.testing.assert_array_equal(all_means[:40], means)
    correlation = np.abs(np.corrcoef(all_means.T, latents.T)[:8, 8:])
    assert np.all(correlation.max(axis=0) > 0.9), correlation.max(axis=0)
    # At the optimum of the entropy objective, λ and σ² are the closed-form ones and each
    # posterior is its row's optimum: each row's E-step at the learned λ, σ² ends where the
    # joint fit ended, so the mean ELBO of the training rows is the trained objective.
    summary = json.loads((fitted.run_dir_ / "summary.json").read_text())
    assert fitted.score(X) == pytest.approx(summary["objective"], abs=1e-3)
    # Pure noise scores lower than bars.
    noise = np.random.default_rng(0).normal(size=(40, 16))
    assert fitted.score(noise) < fitted.score(X[:40]) - 10


def test_denoising_a_mosaic_of_bars_beats_the_noisy_image(bars, fitted):
    X, _, _ = bars
    mosaic = np.block([[X[5 * i + j].reshape(4, 4) for j in range(5)] for i in range(5)])
    result = fitted.denoise(mosaic, sigma=0.3, stride=4, random_state=1)
    assert result["posterior"].shape == mosaic.shape == result["noisy"].shape
    assert result["psnr"]["patches"] == 25
    # 16 pixels on 8 atoms alone gain 10 log10(2) ≈ 3 dB; sparsity adds to it.
    assert result["psnr"]["posterior"] > result["psnr"]["noisy"] + 3, result["psnr"]
    # The PSNRs are those of the returned images (peak 1).
    mse = np.mean((result["posterior"] - mosaic) ** 2)
    assert result["psnr"]["posterior"] == pytest.approx(-10 * np.log10(mse), rel=1e-9)


def test_annealed_em_and_amortized_posteriors_train(bars):
    X, fields, _ = bars
    em = SparseCoding(
        8, posterior="diagonal", anneal=[3.0, 2.0, 1.0], epochs=4, batch_size=100, max_iters=50,
        scale_floor=1e-3,
    ).fit(X)
    records = json_lines(em.run_dir_ / "metrics.jsonl")
    assert [r["train"]["beta"] for r in records] == [3.0, 2.0, 1.0, 1.0]
    assert em.n_iter_ == 4 and np.isfinite(em.score(X[:20]))
    amortized = SparseCoding(
        8, posterior="amortized", encoder_hidden=(32,), epochs=6, batch_size=50, lr=3e-3
    ).fit(X)
    records = json_lines(amortized.run_dir_ / "metrics.jsonl")
    assert records[-1]["train"]["elbo"] > records[0]["train"]["elbo"]
    means, covariances = amortized.transform(X[:10], return_covariance=True)
    # Rank-0 encoder: diagonal covariances.
    off_diagonal = covariances - np.einsum("nii->ni", covariances)[:, :, None] * np.eye(8)
    assert np.abs(off_diagonal).max() == 0.0
    assert np.isfinite(amortized.score(X[:10]))


def test_python_and_cli_runs_are_the_same(bars, tmp_path):
    X = bars[0][:150]
    for name, estimator in [
        ("lbfgs", SparseCoding(6, posterior="full", max_iters=300, random_state=4)),
        ("em", SparseCoding(6, posterior="diagonal", method="em", epochs=2, batch_size=50,
                            max_iters=30, whiten="zca", random_state=4)),
    ]:
        folder = tmp_path / name
        (folder / "data").mkdir(parents=True)
        np.save(folder / "data" / "train.npy", X)
        (folder / "sparse.toml").write_text(estimator.config(n_samples=len(X)))
        run_cli("sparse", folder / "sparse.toml", "--out", folder / "cli", "--quiet")
        estimator.set_params(run_dir=folder / "py").fit(X)
        cli_run = folder / "cli" / "seed-4"
        for file in ("model.safetensors",):
            assert (folder / "py" / file).read_bytes() == (cli_run / file).read_bytes(), name
        assert json_lines(folder / "py" / "metrics.jsonl") == json_lines(
            cli_run / "metrics.jsonl"
        ), name
        py_summary = without_timings(json.loads((folder / "py" / "summary.json").read_text()))
        cli_summary = without_timings(json.loads((cli_run / "summary.json").read_text()))
        assert py_summary == cli_summary, name
        # The CLI's run opens in Python to the same model.
        opened = _core.SparseRun.open(os.fspath(cli_run))
        np.testing.assert_array_equal(opened.components, estimator.components_)


def test_bad_inputs_raise_errors_that_name_the_argument(bars, fitted):
    X = bars[0]
    with pytest.raises(ValueError, match="posterior = 'sparse'"):
        SparseCoding(4, posterior="sparse").fit(X)
    with pytest.raises(ValueError, match="anneal changes β by epoch"):
        SparseCoding(4, method="lbfgs", anneal="em-prior").fit(X)
    with pytest.raises(ValueError, match=r"anneal = \[0.5\]"):
        SparseCoding(4, method="em", anneal=[0.5]).fit(X)
    with pytest.raises(ValueError, match="method = 'adam' with posterior = 'full'"):
        SparseCoding(4, method="adam").fit(X)
    with pytest.raises(ValueError, match="encoder_rank = 9"):
        SparseCoding(4, posterior="amortized", encoder_rank=9).fit(X)
    with pytest.raises(ValueError, match="whiten = 'pca'"):
        SparseCoding(4, whiten="pca").fit(X)
    with pytest.raises(ValueError, match="n_components = 0"):
        SparseCoding(0).fit(X)
    with pytest.raises(ValueError, match="history_precision = 'f16'"):
        SparseCoding(4, history_precision="f16").fit(X)
    with pytest.raises(ValueError, match="posterior_scale = 0"):
        SparseCoding(4, posterior_scale=0).fit(X)
    with pytest.raises(ValueError, match="16 features"):
        fitted.transform(X[:, :9])
    with pytest.raises(ValueError, match="sigma = -1"):
        fitted.denoise(np.zeros((8, 8)), sigma=-1)
    with pytest.raises(ValueError, match="image: expected a 2-D array"):
        fitted.denoise(np.zeros(16), sigma=0.1)
    with pytest.raises(ValueError, match=r"smaller than a 4×4 patch"):
        fitted.denoise(np.zeros((3, 8)), sigma=0.1)
    not_square = SparseCoding(2, max_iters=50).fit(X[:, :5])
    with pytest.raises(ValueError, match="not a square patch"):
        not_square.denoise(np.zeros((8, 8)), sigma=0.1)


# No check is skipped: scikit-learn skips `check_array_api_input` itself when SCIPY_ARRAY_API
# is not set (its tests need array-api libraries); every other check runs and passes.
# The settings are small so that the checks (of the API, not of convergence) stay fast.
@parametrize_with_checks(
    [
        SparseCoding(3, max_iters=200),
        SparseCoding(3, posterior="diagonal", method="em", epochs=2, max_iters=20),
        SparseCoding(3, posterior="amortized", epochs=2, encoder_hidden=(8,)),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pickling_a_fitted_estimator_round_trips(bars, fitted):
    X = bars[0][:20]
    copy = pickle.loads(pickle.dumps(fitted))
    assert copy.run_dir_ != fitted.run_dir_
    assert copy.score(X) == fitted.score(X)
    np.testing.assert_array_equal(copy.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(copy.components_, fitted.components_)
