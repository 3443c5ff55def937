"""Soft IoU and rank correlation on hand-made maps."""

import math

import numpy as np
import pytest

from vlm_focus.errors import InputError
from vlm_focus.metrics import rank_correlation, resize_map, soft_iou


def test_soft_iou_hand_computed():
    a = np.array([[0.0, 2.0], [1.0, 0.0]])  # -> [[0, 1], [0.5, 0]]
    b = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert soft_iou(a, b) == pytest.approx(1.5 / 2.0)
    assert soft_iou(a, a * 3 + 1) == pytest.approx(1.0)


def test_soft_iou_of_binary_maps_is_the_iou():
    a = np.array([[1.0, 1.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert soft_iou(a, b) == pytest.approx(1 / 3)
    assert soft_iou(a, 1 - a) == 0.0


def test_rank_correlation_spearman_formula():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 2.0], [4.0, 3.0]])  # sum d^2 = 2: 1 - 6*2 / (4 * 15)
    assert rank_correlation(a, b) == pytest.approx(0.8)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)


def test_resize_second_map_to_first_grid():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    big = np.kron(a, np.ones((4, 4)))  # the same map at 8x8
    np.testing.assert_allclose(resize_map(big, (2, 2)), a, atol=1e-6)
    assert rank_correlation(a, big) == pytest.approx(1.0)
    assert soft_iou(a, big) == pytest.approx(1.0)
    assert resize_map(a, (4, 4)).shape == (4, 4)
    with pytest.raises(InputError, match="resize"):
        soft_iou(a, big, resize=False)


def test_flat_maps_give_nan():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert math.isnan(soft_iou(a, np.ones((2, 2))))
    assert math.isnan(rank_correlation(np.zeros((2, 2)), a))
