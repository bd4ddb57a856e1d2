"""Statistics the recovery tests share."""

import numpy as np


def standard_errors(mean_nll, theta, n):
    """√((H⁻¹)_ii / n) with H the Hessian of ``mean_nll`` at ``theta`` (central differences)."""
    theta = np.asarray(theta, dtype=float)
    k = theta.size
    h = 1e-4 * np.maximum(np.abs(theta), 1.0)

    def at(moves):
        x = theta.copy()
        for i, sign in moves:
            x[i] += sign * h[i]
        return mean_nll(x)

    centre = mean_nll(theta)
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            if i == j:
                hessian[i, i] = (at([(i, 1)]) - 2 * centre + at([(i, -1)])) / h[i] ** 2
            else:
                hessian[i, j] = (
                    at([(i, 1), (j, 1)]) - at([(i, 1), (j, -1)])
                    - at([(i, -1), (j, 1)]) + at([(i, -1), (j, -1)])
                ) / (4 * h[i] * h[j])
    return np.sqrt(np.diag(np.linalg.inv(hessian)) / n)
