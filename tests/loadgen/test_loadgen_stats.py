"""The p-value machinery against textbook values and against itself."""

from __future__ import annotations

import math
import random

import pytest

from loadgen import stats


@pytest.mark.parametrize(
    ("x", "df", "expected"),
    [
        (3.841458820694124, 1, 0.05),
        (13.815510557964274, 2, 0.001),
        (9.210340371976184, 2, 0.01),
        (7.814727903251178, 3, 0.05),
        (0.0, 2, 1.0),
        (100.0, 50, 3.4549e-5),  # large df exercises the continued fraction
        (0.5, 3, 0.9188914),  # x < a + 1 exercises the series
    ],
)
def test_chi2_sf_matches_tables(x: float, df: int, expected: float) -> None:
    assert stats.chi2_sf(x, df) == pytest.approx(expected, rel=1e-4)


def test_chi2_sf_df2_closed_form() -> None:
    # For df=2 the survival function is exactly exp(-x/2).
    for x in (0.1, 1.0, 5.0, 20.0, 60.0):
        assert stats.chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-9)


def test_isf_inverts_sf() -> None:
    for df in (1, 2, 3, 5):
        for alpha in (0.05, 0.01, 0.001):
            assert stats.chi2_sf(stats.chi2_isf(alpha, df), df) == pytest.approx(alpha, rel=1e-6)


def test_exact_tail_is_a_probability_and_matches_enumeration_by_simulation() -> None:
    counts = [9, 3, 3]
    p_exact = stats.exact_uniform_sf(counts)
    rng = random.Random(7)
    obs, _ = stats.chi_square_uniform(counts)
    trials = 20000
    hits = 0
    for _ in range(trials):
        sim = [0, 0, 0]
        for _ in range(15):
            sim[rng.randrange(3)] += 1
        if stats.chi_square_uniform(sim)[0] >= obs - 1e-9:
            hits += 1
    assert 0 < p_exact < 1
    assert hits / trials == pytest.approx(p_exact, abs=0.01)


def test_exact_tail_of_perfect_split_is_one() -> None:
    assert stats.exact_uniform_sf([5, 5, 5]) == pytest.approx(1.0)


def test_noncentral_reduces_to_central_and_grows_with_noncentrality() -> None:
    assert stats.ncx2_sf(5.0, 2, 0.0) == pytest.approx(stats.chi2_sf(5.0, 2))
    values = [stats.ncx2_sf(13.8, 2, nc) for nc in (1, 5, 20, 60)]
    assert values == sorted(values)
    assert values[-1] > 0.99


def test_prob_some_cell_empty() -> None:
    # 3 units over 3 cells: only the 3! = 6 of 27 permutations fill every cell.
    assert stats.prob_some_cell_empty(3, 3) == pytest.approx(1 - 6 / 27)
    assert stats.prob_some_cell_empty(2, 3) == pytest.approx(1.0)
    assert stats.prob_some_cell_empty(100, 3) < 1e-15
