"""M4 downsampling: a series of any length cut to what a chart of ``buckets`` pixels can show.

A line chart drawn ``buckets`` pixels wide shows, per pixel column, where the line enters and
leaves it and how far it reaches up and down. M4 (Jugel et al., VLDB 2014) keeps exactly those
points per bucket of x: the first and last by x and the minimum and maximum of y, so the chart of
the kept points is the chart of all of them, from at most 4 points a bucket.

Buckets split [lo, hi] (the requested range; an open or infinite bound is the data's own) into
``buckets`` equal spans; a point at ``hi`` belongs to the last. NaN values are never a bucket's minimum or maximum (they
are gaps, not numbers), but stay as its first or last point, so a chart shows where the gap is.
Points whose x is NaN are dropped. numpy is imported only when a series is cut.
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
    xf, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xf.shape != ys.shape or xf.ndim != 1:
        raise ValidationError("x and y must be one-dimensional and equally long")
    order = _sorted_in_range(xf, lo, hi)
    if order is not None:
        xf, ys = xf[order], ys[order]
    if xf.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    low = lo if lo is not None and math.isfinite(lo) else xf[0]
    high = hi if hi is not None and math.isfinite(hi) else xf[-1]
    kept = _m4_sorted(_bucket_of(xf, low, high, buckets), ys)
    return (kept if order is None else order[kept]), int(xf.size)


def _sorted_in_range(xf: np.ndarray, lo: float | None, hi: float | None
                     ) -> NDArray[Any] | None:
    """Positions of the points with a real x within [lo, hi], sorted by x (stable); None when
    that is every point as it is (the common case of a series logged by step: no copy)."""
    import numpy as np

    mask = None if not np.isnan(xf).any() else ~np.isnan(xf)
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


def _bucket_of(xs: np.ndarray, low: float, high: float, buckets: int) -> NDArray[Any]:
    """Each x's bucket: floor((x - low) / (high - low) * buckets), the last one closed."""
    import numpy as np

    span = float(high) - float(low)
    if span <= 0 or not np.isfinite(span):
        return np.zeros(xs.size, dtype=np.int64)
    where = np.floor((xs - low) / span * buckets)
    return np.clip(where, 0, buckets - 1).astype(np.int64)


def _m4_sorted(bucket: np.ndarray, ys: np.ndarray) -> NDArray[Any]:
    """Positions of first, min, max and last per bucket, for points sorted by x (so
    ``bucket`` is non-decreasing), ascending and each once."""
    import numpy as np

    starts = _starts(bucket)
    keep = [starts, np.r_[starts[1:], bucket.size] - 1]
    nan = np.isnan(ys)
    if not nan.any():
        keep += [_first_at(starts, bucket, ys, pick) for pick in (np.minimum, np.maximum)]
    elif not nan.all():
        real = np.flatnonzero(~nan)
        rb, ry = bucket[real], ys[real]
        rs = _starts(rb)
        keep += [real[_first_at(rs, rb, ry, pick)] for pick in (np.minimum, np.maximum)]
    return np.unique(np.concatenate(keep))


def _starts(bucket: np.ndarray) -> NDArray[Any]:
    """Where each run of equal (sorted) bucket numbers starts."""
    import numpy as np

    return np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])


def _first_at(starts: np.ndarray, bucket: np.ndarray, ys: np.ndarray, pick: Any
              ) -> NDArray[Any]:
    """Per bucket (starting at ``starts``), the first position holding its ``pick``
    (np.minimum, np.maximum) of ``ys`` (no NaN among them)."""
    import numpy as np

    extreme = pick.reduceat(ys, starts)
    hits = np.flatnonzero(ys == np.repeat(extreme, np.diff(np.r_[starts, ys.size])))
    hb = bucket[hits]
    first: NDArray[Any] = hits[np.r_[True, hb[1:] != hb[:-1]]]
    return first
