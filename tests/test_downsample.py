"""M4 downsampling against a brute-force reference: per bucket the first, last, lowest and
highest point are kept, in x order, each once, so a line drawn at the bucket resolution is the
line of every point."""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runyard.core.downsample import m4, m4_indices
from runyard.errors import ValidationError

XS = st.integers(-50, 50).map(float) | st.floats(-1e6, 1e6) | st.just(math.nan)
YS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-3, 3).map(float)
BOUND = st.none() | st.floats(-100, 100) | st.sampled_from([-math.inf, math.inf])


@st.composite
def series(draw: st.DrawFn) -> tuple[list[float], list[float], int, float | None, float | None]:
    xs = draw(st.lists(XS, max_size=200))
    if draw(st.booleans()):
        xs = sorted(xs, key=lambda v: (math.isnan(v), v))
    ys = draw(st.lists(YS, min_size=len(xs), max_size=len(xs)))
    return xs, ys, draw(st.integers(1, 40)), draw(BOUND), draw(BOUND)


def in_range(x: float, lo: float | None, hi: float | None) -> bool:
    return not math.isnan(x) and (lo is None or x >= lo) and (hi is None or x <= hi)


def buckets_of(xs: list[float], ys: list[float], n: int, lo: float | None, hi: float | None
               ) -> dict[int, list[int]]:
    """Bucket number → the positions in it, in x order (ties: input order)."""
    order = sorted((i for i, x in enumerate(xs) if in_range(x, lo, hi)), key=lambda i: xs[i])
    if not order:
        return {}
    low = lo if lo is not None and math.isfinite(lo) else xs[order[0]]
    high = hi if hi is not None and math.isfinite(hi) else xs[order[-1]]
    span, found = high - low, {}  # type: ignore[var-annotated]
    left = [low + span * k / n for k in range(n)]  # the buckets' left edges
    for i in order:
        b = bisect.bisect_right(left, xs[i]) - 1 if span > 0 and math.isfinite(span) else 0
        found.setdefault(b, []).append(i)
    return found


def reference(xs: list[float], ys: list[float], n: int, lo: float | None, hi: float | None
              ) -> list[int]:
    kept: list[int] = []
    for members in buckets_of(xs, ys, n, lo, hi).values():
        real = [i for i in members if not math.isnan(ys[i])]
        picks = {members[0], members[-1]}
        if real:
            picks |= {min(real, key=lambda i: ys[i]), max(real, key=lambda i: ys[i])}
        kept += [i for i in members if i in picks]
    return kept


@given(series())
def test_m4_keeps_exactly_the_brute_force_points(case: Any) -> None:
    xs, ys, n, lo, hi = case
    picked, total = m4_indices(np.array(xs), np.array(ys), n, lo, hi)
    assert picked.tolist() == reference(xs, ys, n, lo, hi)
    assert total == sum(in_range(x, lo, hi) for x in xs)


@given(series())
def test_every_bucket_keeps_its_ends_and_extremes_at_most_four_points(case: Any) -> None:
    xs, ys, n, lo, hi = case
    picked = m4_indices(np.array(xs), np.array(ys), n, lo, hi)[0].tolist()
    assert len(set(picked)) == len(picked)
    assert [xs[i] for i in picked] == sorted(xs[i] for i in picked)
    for members in buckets_of(xs, ys, n, lo, hi).values():
        kept = [i for i in picked if i in members]
        assert len(kept) <= 4
        assert xs[kept[0]] == xs[members[0]] and xs[kept[-1]] == xs[members[-1]]
        real = [ys[i] for i in members if not math.isnan(ys[i])]
        kept_real = [ys[i] for i in kept if not math.isnan(ys[i])]
        if real:
            assert min(kept_real) == min(real) and max(kept_real) == max(real)


def test_a_long_series_is_cut_to_at_most_four_points_per_bucket() -> None:
    steps = np.arange(100_000, dtype=np.int64)
    values = np.sin(steps / 100.0)
    values[500] = math.nan
    cut = m4(steps, values, 1000)
    assert cut.total == 100_000 and len(cut.x) <= 4000
    assert cut.x.dtype == np.int64 and cut.x[0] == 0 and cut.x[-1] == 99_999
    assert np.nanmin(cut.y) == np.nanmin(values) and np.nanmax(cut.y) == np.nanmax(values)


def test_steps_beyond_float_precision_come_back_as_the_same_integers() -> None:
    steps = np.array([2**62 + 1, 2**62 + 3, 2**62 + 5], dtype=np.int64)
    assert m4(steps, [2.0, 1.0, 3.0], 1).x.tolist() == steps.tolist()


def test_a_range_with_no_points_gives_none() -> None:
    cut = m4([1.0, 2.0], [1.0, 2.0], 10, lo=5.0, hi=6.0)
    assert cut.total == 0 and cut.x.size == 0 and cut.y.size == 0


@pytest.mark.parametrize("buckets", [0, -1, 10_001, True, 2.5])
def test_bucket_counts_outside_1_to_10000_are_refused(buckets: Any) -> None:
    with pytest.raises(ValidationError, match="buckets"):
        m4([1.0], [1.0], buckets)


def test_x_and_y_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValidationError, match="equally long"):
        m4([1.0, 2.0], [1.0], 3)
