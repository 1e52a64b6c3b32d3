"""Goodness-of-fit tests for "is this split consistent with uniform random assignment?".

Only the standard library: the chi-square tail comes from the regularized incomplete gamma
function (series / continued fraction, via math.lgamma); small integer samples get an exact
multinomial tail by enumeration instead, where the chi-square approximation is poor.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

_EPS = 1e-15
_MAX_ITER = 10_000
# Enumerating every split is exact but costs one pass per composition; above this many
# compositions the chi-square approximation is already excellent (all expected counts large).
EXACT_MAX_OUTCOMES = 2_000


def _gamma_p_series(a: float, x: float) -> float:
    """Lower regularized gamma P(a, x) by its power series (converges fast for x < a + 1)."""
    term = 1.0 / a
    total = term
    n = a
    for _ in range(_MAX_ITER):
        n += 1.0
        term *= x / n
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_continued_fraction(a: float, x: float) -> float:
    """Upper regularized gamma Q(a, x) by Lentz's continued fraction (for x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_q(a: float, x: float) -> float:
    """Upper regularized incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a)."""
    if a <= 0:
        raise ValueError("a must be > 0")
    if x <= 0:
        return 1.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return min(1.0, _gamma_q_continued_fraction(a, x))


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df)."""
    if df <= 0:
        raise ValueError("df must be >= 1")
    return gamma_q(df / 2.0, x / 2.0)


@functools.lru_cache(maxsize=256)
def chi2_isf(alpha: float, df: int) -> float:
    """Critical value c with P(X >= c) = alpha, by bisection (chi2_sf is monotone)."""
    lo, hi = 0.0, 1.0
    while chi2_sf(hi, df) > alpha and hi < 1e6:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if chi2_sf(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def ncx2_sf(x: float, df: int, nc: float) -> float:
    """P(X >= x) for a noncentral chi-square: a Poisson(nc/2) mixture of central ones."""
    if nc <= 0:
        return chi2_sf(x, df)
    half = nc / 2.0
    # Sum outward from the Poisson mode so large noncentralities converge too.
    mode = int(half)
    total = 0.0
    for direction in (1, -1):
        j = mode if direction == 1 else mode - 1
        for _ in range(_MAX_ITER):
            if j < 0:
                break
            weight = math.exp(-half + j * math.log(half) - math.lgamma(j + 1))
            total += weight * gamma_q((df + 2 * j) / 2.0, x / 2.0)
            if weight < 1e-16 and abs(j - mode) > 10:
                break
            j += direction
    return min(1.0, total)


def chi_square_uniform(counts: Sequence[float]) -> tuple[float, int]:
    """Pearson's statistic against equal shares, and its degrees of freedom."""
    k = len(counts)
    n = float(sum(counts))
    if k < 2 or n <= 0:
        return 0.0, max(k - 1, 0)
    expected = n / k
    stat = sum((c - expected) ** 2 for c in counts) / expected
    return stat, k - 1


def n_compositions(n: int, k: int) -> int:
    """How many ways n units can split over k labelled cells."""
    return math.comb(n + k - 1, k - 1)


def _compositions(n: int, k: int):
    if k == 1:
        yield (n,)
        return
    for first in range(n + 1):
        for rest in _compositions(n - first, k - 1):
            yield (first, *rest)


def exact_uniform_sf(counts: Sequence[int]) -> float:
    """Exact P(X2 >= observed X2) when n units are assigned uniformly at random to k cells.

    Orders outcomes by Pearson's statistic (the "exact chi-square test"), summing the
    multinomial probabilities of every split at least as uneven as the one observed.
    """
    k = len(counts)
    n = int(sum(counts))
    if k < 2 or n == 0:
        return 1.0
    # Integer form of the statistic avoids float ties: k * sum(c^2) - n^2.
    obs_key = k * sum(int(c) ** 2 for c in counts)
    log_base = math.lgamma(n + 1) - n * math.log(k)
    total = 0.0
    for split in _compositions(n, k):
        if k * sum(c * c for c in split) >= obs_key:
            total += math.exp(log_base - sum(math.lgamma(c + 1) for c in split))
    return min(1.0, total)


def prob_some_cell_empty(n: int, k: int) -> float:
    """P(at least one of k cells gets none of n uniformly assigned units), inclusion-exclusion."""
    if k <= 1:
        return 0.0 if n > 0 else 1.0
    total = 0.0
    for j in range(1, k):
        total += (-1) ** (j + 1) * math.comb(k, j) * ((k - j) / k) ** n
    return min(1.0, max(0.0, total))


# Exact occupancy by dynamic programming costs units x cells steps; above this the union bound
# C(k, m) ((k - m) / k)^n is used, which is then astronomically small and only errs upward.
_OCCUPANCY_DP_MAX_STEPS = 1_000_000


@functools.lru_cache(maxsize=4096)
def prob_at_least_empty(n: int, k: int, m: int = 1) -> float:
    """P(at least m of k cells get none of n units assigned uniformly at random).

    Exact: the number of occupied cells after each unit is a Markov chain (the next unit lands
    in an occupied cell with probability occupied/k). A dynamic programme over it is stable
    where inclusion-exclusion's alternating sums lose all precision (n close to k)."""
    if m <= 0:
        return 1.0
    if m >= k:
        return 1.0 if n == 0 else 0.0
    if n * k > _OCCUPANCY_DP_MAX_STEPS:
        return min(1.0, math.comb(k, m) * ((k - m) / k) ** n)
    occupied = [1.0] + [0.0] * k
    for _ in range(n):
        nxt = [0.0] * (k + 1)
        for o, p in enumerate(occupied):
            if p:
                nxt[o] += p * o / k
                if o < k:
                    nxt[o + 1] += p * (k - o) / k
        occupied = nxt
    return min(1.0, max(0.0, sum(occupied[: k - m + 1])))


def smallest_units_to_see_an_empty_pod(k: int, alpha: float) -> int:
    """The fewest units for which "some pod got nothing" is less likely than alpha by chance,
    i.e. the smallest load on which a pod that really got nothing can be told from bad luck."""
    if k <= 1:
        return 1
    # Union bound k((k-1)/k)^n < alpha gives an n that surely suffices; bisect below it.
    hi = max(1, math.ceil(math.log(alpha / k) / math.log((k - 1) / k)) + 1)
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if prob_at_least_empty(mid, k, 1) < alpha:
            hi = mid
        else:
            lo = mid
    return hi
