"""What ``store copy`` copies besides runs: the codespecs, every version under its number.

A version is added to the destination as the same number (``add_codespec(number=...)``), so
a copy repeated, resumed or run twice at once adds each version once; a destination that has
that number already keeps its own. Buffers are not copied: they are a command run's streams,
written once, and their bytes are blobs of the source's blob store (the runs that used them
keep their ids in their parameters).
"""

from __future__ import annotations

from runyard.errors import ConflictError
from runyard.stores import RunStore


def copy_codespecs(src: RunStore, dst: RunStore) -> int:
    """Copy every codespec version of ``src`` missing from ``dst``; how many were added."""
    added = 0
    for latest in src.list_codespecs():
        for version in src.list_codespecs(latest.name):
            try:
                added += dst.add_codespec(version.name, version.digest, version.spec,
                                          version.created, number=version.version)[1]
            except ConflictError:
                break  # (the destination's own history of this name is shorter: left alone)
    return added
