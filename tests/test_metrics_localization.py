"""Localisation metrics on hand-made maps with hand-computed values."""

import math

import numpy as np
import pytest
import torch

from vlm_focus.errors import InputError
from vlm_focus.metrics import (
    energy_pointing,
    localization_scores,
    pointing_game,
    relevance_mass,
    relevance_rank,
)


def _mask(shape, *pixels):
    m = np.zeros(shape, dtype=bool)
    for p in pixels:
        m[p] = True
    return m


def test_pointing_game_tolerance_is_euclidean_distance_to_the_mask():
    heat = np.zeros((7, 7))
    heat[2, 2] = 1.0
    mask = _mask((7, 7), (2, 5), (3, 5))  # nearest mask pixel 3 px to the right
    assert pointing_game(heat, mask, tolerance=2) == 0.0
    assert pointing_game(heat, mask, tolerance=3) == 1.0
    diag = _mask((7, 7), (5, 6))  # (3, 4) away: distance 5
    assert pointing_game(heat, diag, tolerance=4.9) == 0.0
    assert pointing_game(heat, diag, tolerance=5) == 1.0
    assert pointing_game(heat, _mask((7, 7), (2, 2)), tolerance=0) == 1.0


def test_pointing_game_tied_maxima_count_by_share_and_a_flat_map_misses():
    heat = np.zeros((5, 5))
    heat[4, 4] = 2.0
    assert pointing_game(heat, _mask((5, 5), (4, 4)), tolerance=0) == 1.0
    heat[0, 0] = 2.0  # two tied maxima, one on the mask: half a hit
    assert pointing_game(heat, _mask((5, 5), (4, 4)), tolerance=0) == 0.5
    assert pointing_game(heat, _mask((5, 5), (2, 2)), tolerance=0) == 0.0
    assert pointing_game(np.full((5, 5), 0.3), _mask((5, 5), (2, 2)), tolerance=10) == 0.0


def test_relevance_mass_counts_positive_relevance_only():
    heat = np.array([[1.0, -2.0], [3.0, 0.0]])
    assert relevance_mass(heat, _mask((2, 2), (0, 0), (0, 1))) == pytest.approx(1 / 4)
    assert relevance_mass(heat, _mask((2, 2), (1, 0))) == pytest.approx(3 / 4)
    # no positive relevance: chance level |mask| / N
    assert relevance_mass(np.zeros((2, 2)), _mask((2, 2), (0, 0))) == pytest.approx(1 / 4)


def test_relevance_rank_top_k_and_even_tie_split():
    heat = np.array([[4.0, 3.0], [2.0, 1.0]])
    assert relevance_rank(heat, _mask((2, 2), (0, 0), (1, 1))) == pytest.approx(0.5)
    assert relevance_rank(heat, _mask((2, 2), (0, 0), (0, 1))) == pytest.approx(1.0)
    # K = 2 and three pixels tie at the top; one of them is in the mask. Two of the three
    # drawn at random hit the mask 2 * (1/3) times on average: share (2/3) / 2 = 1/3.
    tied = np.array([[1.0, 1.0], [1.0, 0.0]])
    assert relevance_rank(tied, _mask((2, 2), (0, 0), (1, 1))) == pytest.approx(1 / 3)
    assert relevance_rank(np.ones((4, 4)), _mask((4, 4), (0, 0), (1, 1), (2, 2), (3, 3))) == pytest.approx(
        0.25
    )


def test_energy_pointing_min_max_normalises_unlike_relevance_mass():
    heat = np.array([[1.0, 3.0], [2.0, 1.0]])  # normalised: [[0, 1], [0.5, 0]]
    top = _mask((2, 2), (0, 0), (0, 1))
    assert energy_pointing(heat, top) == pytest.approx(1 / 1.5)
    assert relevance_mass(heat, top) == pytest.approx(4 / 7)
    unit = (heat - 1) / 2
    assert energy_pointing(unit, top) == pytest.approx(relevance_mass(unit, top))
    assert energy_pointing(np.full((2, 2), 5.0), top) == pytest.approx(0.5)


def test_empty_mask_gives_nan_for_every_score():
    scores = localization_scores(np.random.default_rng(0).random((6, 6)), np.zeros((6, 6), bool))
    assert set(scores) == {"pointing_game", "relevance_mass", "relevance_rank", "energy_pointing"}
    assert all(math.isnan(v) for v in scores.values())


def test_inputs_tensors_and_validation():
    heat = torch.zeros(4, 4)
    heat[1, 1] = 1.0
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1, 1] = True
    assert localization_scores(heat, mask, tolerance=0) == {
        "pointing_game": 1.0,
        "relevance_mass": 1.0,
        "relevance_rank": 1.0,
        "energy_pointing": 1.0,
    }
    with pytest.raises(InputError, match="same shape"):
        relevance_mass(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(InputError, match="2-D"):
        relevance_mass(np.ones((1, 4, 4)), np.ones((4, 4)))
    with pytest.raises(InputError, match="NaN"):
        relevance_rank(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(InputError, match="tolerance"):
        pointing_game(np.ones((2, 2)), np.ones((2, 2)), tolerance=-1)
