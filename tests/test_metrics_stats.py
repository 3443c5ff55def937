"""Mean and t-interval on hand-made values."""

import math

import pytest

from vlm_focus.errors import InputError
from vlm_focus.metrics import mean_ci

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975, 2 degrees of freedom (tables)


def test_t_interval_hand_computed():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])  # s = 1
    half = T_975_DF2 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    # 90%: t(0.95, 2) = 2.919985580355516
    assert mean_ci([1.0, 2.0, 3.0], level=0.9)[2] == pytest.approx(2.0 + 2.919985580355516 / math.sqrt(3))


def test_nan_and_none_are_ignored():
    assert mean_ci([1.0, float("nan"), 2.0, None, 3.0]) == pytest.approx(mean_ci([1.0, 2.0, 3.0]))


def test_small_samples():
    assert mean_ci([]) == pytest.approx((math.nan,) * 3, nan_ok=True)
    mean, low, high = mean_ci([0.7, float("nan")])
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert mean_ci([5.0, 5.0, 5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(InputError):
        mean_ci([1.0, 2.0], level=1.5)
