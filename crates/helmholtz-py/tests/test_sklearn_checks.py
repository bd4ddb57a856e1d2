"""scikit-learn's estimator checks on HelmholtzMachine.

Most of scikit-learn's checks fit on generic data: non-negative reals up to about 9, or
standard normal values. A Helmholtz machine models binary data and refuses values outside
[0, 1] with a ValueError by design, so those checks fail on it for that reason alone; they are
listed in EXPECTED_FAILED. To check everything else they test (cloning, parameters, pickling,
idempotent fits, subset and order invariance, n_features_in_, dtypes, memory layouts, the
transformer API), the same checks also run on ``UnitInterval``, which differs from
HelmholtzMachine only in mapping its input into [0, 1] by (tanh(x) + 1) / 2 first: every one of
them must pass there.
"""

import numpy as np
from sklearn.utils.estimator_checks import parametrize_with_checks

from helmholtz import HelmholtzMachine

OUTSIDE_UNIT_INTERVAL = "fits on values outside [0, 1], which a model of binary data refuses"
EXPECTED_FAILED = {
    name: OUTSIDE_UNIT_INTERVAL
    for name in [
        "check_dict_unchanged",
        "check_dont_overwrite_parameters",
        "check_estimators_dtypes",
        "check_estimators_fit_returns_self",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_fit2d_1feature",
        "check_fit2d_1sample",
        "check_fit2d_predict1d",
        "check_fit_check_is_fitted",
        "check_fit_idempotent",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_n_features_in",
        "check_n_features_in_after_fitting",
        "check_pipeline_consistency",
        "check_readonly_memmap_input",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
    ]
}


class UnitInterval(HelmholtzMachine):
    """HelmholtzMachine on (tanh(x) + 1) / 2: the checks' data mapped into [0, 1]."""

    def _unit_interval(self, X):
        return ((np.tanh(X) + 1) / 2).astype(np.float32)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = False
        return tags


SETTINGS = dict(hidden=(3,), epochs=2, batch_size=10, eval_k=5)


@parametrize_with_checks(
    [HelmholtzMachine(**SETTINGS)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@parametrize_with_checks([UnitInterval(**SETTINGS)])
def test_sklearn_compatible_in_the_unit_interval(estimator, check):
    check(estimator)
