"""HelmholtzMachine: the estimator's numbers against closed forms and exact enumeration, its
determinism across thread counts, and its run directory."""

import itertools
import pickle

import numpy as np
import pytest

import helmholtz
from helmholtz import HelmholtzMachine


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def log_sigmoid(a):
    return -np.logaddexp(0.0, -a)


def exact_log_likelihood(params, X):
    """log p(x) of a one-hidden-layer machine by summing p(x, h) over all 2^H states h."""
    prior, w, b = params["p.prior.b"], params["p.0.w"], params["p.0.b"]
    H = len(prior)
    states = np.array(list(itertools.product([0.0, 1.0], repeat=H)))  # (2^H, H)
    log_prior = (states * log_sigmoid(prior) + (1 - states) * log_sigmoid(-prior)).sum(1)
    a = states @ w.T.astype(np.float64) + b  # (2^H, D)
    log_px_h = X @ log_sigmoid(a).T + (1 - X) @ log_sigmoid(-a).T  # (N, 2^H)
    joint = log_px_h + log_prior
    top = joint.max(1, keepdims=True)
    return (top + np.log(np.exp(joint - top).sum(1, keepdims=True)))[:, 0]


@pytest.fixture(scope="module")
def lines():
    return helmholtz.datasets.make_lines3x3(400, random_state=3)


@pytest.fixture(scope="module")
def small(lines):
    return HelmholtzMachine(hidden=(4,), epochs=30, batch_size=20, k=5, binarize="none").fit(lines)


def test_importance_sampling_estimate_approaches_the_exact_likelihood(small, lines):
    X = lines[:60].astype(np.float64)
    exact = exact_log_likelihood(small.params_, X)
    estimate = small.score_samples(lines[:60], k=2000)
    # A consistent estimator: within 0.05 nats per point at K = 2000; the ELBO lies below.
    assert np.max(np.abs(estimate - exact)) < 0.05, np.max(np.abs(estimate - exact))
    assert small.entropy_sum(lines[:60], samples=2000)["elbo"] < exact.mean() - 0.01


def test_first_layer_transform_is_the_recognition_mean(small, lines):
    means = small.transform(lines[:10])
    q_w, q_b = small.params_["q.0.w"], small.params_["q.0.b"]
    np.testing.assert_allclose(means, sigmoid(lines[:10] @ q_w.T + q_b), rtol=1e-5, atol=1e-6)


def test_score_samples_depend_on_the_rows_only(small, lines):
    full = small.score_samples(lines[:40], k=20)
    part = small.score_samples(lines[10:20], k=20)
    np.testing.assert_array_equal(full[10:20], part)
    shuffled = small.score_samples(lines[:40][::-1], k=20)
    np.testing.assert_array_equal(full[::-1], shuffled)


def test_training_raises_the_likelihood(lines):
    one = HelmholtzMachine(hidden=(6,), epochs=1, binarize="none").fit(lines)
    more = HelmholtzMachine(hidden=(6,), epochs=40, binarize="none").fit(lines)
    assert more.score(lines, k=200) > one.score(lines, k=200) + 0.5


def test_thread_counts_give_identical_parameters(binary_digits):
    fits = [
        HelmholtzMachine(hidden=(20, 5), epochs=2, n_threads=n, binarize="none").fit(binary_digits[:300])
        for n in (1, 2)
    ]
    for name, value in fits[0].params_.items():
        np.testing.assert_array_equal(value, fits[1].params_[name], err_msg=name)
    np.testing.assert_array_equal(
        fits[0].score_samples(binary_digits[:50], k=10, ),
        fits[1].score_samples(binary_digits[:50], k=10),
    )


def test_samples_follow_the_model(small):
    draws = small.sample(20000, random_state=1)
    assert draws.shape == (20000, 9) and set(np.unique(draws)) <= {0.0, 1.0}
    # The frequency of each 3x3 pattern matches its exact probability.
    patterns, counts = np.unique(draws, axis=0, return_counts=True)
    probability = np.exp(exact_log_likelihood(small.params_, patterns.astype(np.float64)))
    top = np.argsort(-counts)[:5]
    se = np.sqrt(probability[top] * (1 - probability[top]) / 20000)
    assert np.all(np.abs(counts[top] / 20000 - probability[top]) < 5 * se)


def test_entropy_sum_reports_when_the_identity_applies(lines):
    rws = HelmholtzMachine(hidden=(4,), epochs=2, binarize="none").fit(lines)
    ws = HelmholtzMachine(hidden=(4,), epochs=2, algorithm="ws", k=1, binarize="none").fit(lines)
    out = rws.entropy_sum(lines[:50])
    assert not out["identity_applies"] and "importance-weighted" in out["why"]
    assert ws.entropy_sum(lines[:50])["identity_applies"]
    # ELBO = posterior entropy − prior entropy − observable entropy − intermediate ... + gap.
    for result in (out, ws.entropy_sum(lines[:50])):
        total = result["posterior"] - result["prior"] - result["observable"] - sum(result["intermediate"])
        assert abs(result["elbo"] - total - result["gap"]) < 1e-9


def test_pickle_round_trip(small, lines):
    restored = pickle.loads(pickle.dumps(small))
    np.testing.assert_array_equal(restored.score_samples(lines[:30], k=10), small.score_samples(lines[:30], k=10))
    assert restored.run_dir_ != small.run_dir_


def test_bad_hyper_parameters_and_data_are_refused(lines):
    with pytest.raises(ValueError, match="algorithm = 'nope'"):
        HelmholtzMachine(algorithm="nope").fit(lines)
    with pytest.raises(ValueError, match="outside \\[0, 1\\]"):
        HelmholtzMachine(epochs=1).fit(lines * 3)
    with pytest.raises(helmholtz.ConfigError, match="lr"):
        HelmholtzMachine(epochs=1, learning_rate=-1.0).fit(lines)
    grey = np.full((10, 9), 0.5, dtype=np.float32)
    with pytest.raises(helmholtz.DataError, match="not binary"):
        HelmholtzMachine(epochs=1, binarize="none").fit(grey)
    fitted = HelmholtzMachine(hidden=(3,), epochs=1, binarize="none").fit(lines)
    with pytest.raises(ValueError, match="9 features"):
        fitted.score(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="layer = 2"):
        fitted.transform(lines[:2], layer=2)


def test_partial_fit_continues_the_run(lines):
    hm = HelmholtzMachine(hidden=(4,), binarize="none")
    hm.partial_fit(lines)
    hm.partial_fit(lines)
    assert hm._run.epoch == 2
    whole = HelmholtzMachine(hidden=(4,), epochs=2, binarize="none").fit(lines)
    for name, value in whole.params_.items():
        np.testing.assert_array_equal(value, hm.params_[name], err_msg=name)
