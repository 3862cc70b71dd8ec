"""M4 downsampling: a series of any length cut to what a chart of ``buckets`` pixels can show.

A line chart drawn ``buckets`` pixels wide shows, per pixel column, where the line enters and
leaves it and how far it reaches up and down. M4 (Jugel et al., VLDB 2014) keeps exactly those
points per bucket of x: the first and last by x and the minimum and maximum of y, so the chart of
the kept points is the chart of all of them, from at most 4 points a bucket.

Buckets split [lo, hi] (the requested range; an open or infinite bound is the data's own) into
``buckets`` equal spans: bucket k starts at the edge lo + (hi - lo) * k / buckets (``edges``)
and holds the points from it up to the next edge; the last holds ``hi`` too. NaN values are
never a bucket's minimum or maximum (they are gaps, not numbers), but stay as its first or last
point, so a chart shows where the gap is. Points whose x is NaN are dropped. numpy is imported
only when a series is cut.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from runyard.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

MAX_BUCKETS = 10_000


class Downsampled(NamedTuple):
    """The kept points in x order (``x`` keeps the input's dtype) and how many points were in
    range (``total``)."""

    x: Any
    y: Any
    total: int


def m4(x: ArrayLike, y: ArrayLike, buckets: int,
       lo: float | None = None, hi: float | None = None) -> Downsampled:
    """The M4 points of (``x``, ``y``) within [lo, hi] (None: the data's own bound)."""
    import numpy as np

    xs, ys = np.asarray(x), np.asarray(y, dtype=np.float64)
    picked, total = m4_indices(xs, ys, buckets, lo, hi)
    return Downsampled(xs[picked], ys[picked], total)


def m4_indices(x: ArrayLike, y: ArrayLike, buckets: int,
               lo: float | None = None, hi: float | None = None) -> tuple[NDArray[Any], int]:
    """Positions in ``x``/``y`` of the M4 points, in x order (ties: input order), and the count
    of points in range."""
    import numpy as np

    check_buckets(buckets)
    xs, ys = np.asarray(x), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValidationError("x and y must be one-dimensional and equally long")
    whole = np.issubdtype(xs.dtype, np.integer)  # (no NaN to look for)
    xf = xs.astype(np.float64, copy=False)
    order = _sorted_in_range(xf, lo, hi, whole)
    if order is not None:
        xf, ys = xf[order], ys[order]
    if xf.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    low = lo if lo is not None and math.isfinite(lo) else float(xf[0])
    high = hi if hi is not None and math.isfinite(hi) else float(xf[-1])
    kept = _m4_sorted(_segments(xf, low, high, buckets), ys)
    return (kept if order is None else order[kept]), int(xf.size)


def edges(low: float, high: float, buckets: int) -> NDArray[Any]:
    """The left edges of the buckets: low + (high - low) * k / buckets."""
    import numpy as np

    return low + (high - low) * np.arange(buckets, dtype=np.float64) / buckets


def _sorted_in_range(xf: np.ndarray, lo: float | None, hi: float | None, whole: bool
                     ) -> NDArray[Any] | None:
    """Positions of the points with a real x within [lo, hi], sorted by x (stable); None when
    that is every point as it is (the common case of a series logged by step: no copy)."""
    import numpy as np

    mask = None if whole or not np.isnan(xf).any() else ~np.isnan(xf)
    for bound, keep in ((lo, np.greater_equal), (hi, np.less_equal)):
        if bound is not None and (mask is None or mask.any()):
            inside = keep(xf, bound)
            mask = inside if mask is None else mask & inside
    if mask is None or mask.all():
        return None if _ascending(xf) else np.argsort(xf, kind="stable")
    inside = np.flatnonzero(mask)
    return inside if _ascending(xf[inside]) else inside[np.argsort(xf[inside], kind="stable")]


def check_buckets(buckets: object) -> int:
    if isinstance(buckets, bool) or not isinstance(buckets, int) \
            or not 1 <= buckets <= MAX_BUCKETS:
        raise ValidationError(f"buckets must be a whole number from 1 to {MAX_BUCKETS}")
    return buckets


def _ascending(xs: np.ndarray) -> bool:
    return bool((xs[1:] >= xs[:-1]).all())


def _segments(xs: np.ndarray, low: float, high: float, buckets: int) -> NDArray[Any]:
    """Where each non-empty bucket starts in ``xs`` (sorted, within [low, high]), found by
    binary search of the edges: no pass over the points."""
    import numpy as np

    span = high - low
    if not (span > 0 and math.isfinite(span)):
        return np.zeros(1, dtype=np.int64)
    starts = np.searchsorted(xs, edges(low, high, buckets)[1:], side="left")
    starts = np.unique(np.r_[0, starts])
    return starts[starts < xs.size]


def _m4_sorted(starts: np.ndarray, ys: np.ndarray) -> NDArray[Any]:
    """Positions of first, min, max and last per bucket (buckets start at ``starts``),
    ascending and each once."""
    import numpy as np

    keep = [starts, np.r_[starts[1:], ys.size] - 1]
    nan = np.isnan(ys)
    if not nan.any():
        keep += [_first_at(starts, ys, pick) for pick in (np.minimum, np.maximum)]
    elif not nan.all():
        real = np.flatnonzero(~nan)
        rs = np.unique(np.searchsorted(real, starts, side="left"))
        rs = rs[rs < real.size]
        keep += [real[_first_at(rs, ys[real], pick)] for pick in (np.minimum, np.maximum)]
    return np.unique(np.concatenate(keep))


def _first_at(starts: np.ndarray, ys: np.ndarray, pick: Any) -> NDArray[Any]:
    """Per bucket (starting at ``starts``), the first position holding its ``pick``
    (np.minimum, np.maximum) of ``ys`` (no NaN among them)."""
    import numpy as np

    extreme = pick.reduceat(ys, starts)
    hits = np.flatnonzero(ys == np.repeat(extreme, np.diff(np.r_[starts, ys.size])))
    bucket = np.searchsorted(starts, hits, side="right")
    first: NDArray[Any] = hits[np.r_[True, bucket[1:] != bucket[:-1]]]
    return first
