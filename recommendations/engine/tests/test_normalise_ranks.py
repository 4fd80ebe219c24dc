"""``normalise.average_ranks`` is scipy's ``rankdata(method="average")``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from recommendations.engine.ensemble.normalise import average_ranks


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (4, 1682), (2, 7)])
def test_average_ranks_equal_scipys(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    values = np.round(rng.normal(size=shape) * 3)  # many ties
    values[:, ::5] = -np.inf
    expected = scipy.stats.rankdata(values, axis=1, method="average")
    assert np.array_equal(average_ranks(values), expected)
