"""``store copy`` brings the codespecs along, each version under its number, once."""

from __future__ import annotations

from pathlib import Path

from runyard.core.copy import copy_store_urls
from runyard.stores import open_store


def test_codespecs_are_copied_with_their_numbers(store_url: str, tmp_path: Path) -> None:
    src_url = f"sqlite://{tmp_path}/src/runyard.db"
    src = open_store(src_url)
    for name, digest in (("a", "1"), ("a", "2"), ("b", "1"), ("a", "1")):
        src.add_codespec(name, digest, {"name": name, "d": digest}, 5.0)
    dst = open_store(store_url)
    dst.add_codespec("b", "mine", {"name": "b", "d": "mine"}, 1.0)  # the destination's own b
    for _ in range(2):  # a repeat adds nothing
        copy_store_urls(src_url, store_url)
        dst = open_store(store_url)
        assert [(v.version, v.digest) for v in dst.list_codespecs("a")] == [
            (1, "1"), (2, "2"), (3, "1")]
        assert [(v.version, v.digest) for v in dst.list_codespecs("b")] == [(1, "mine")]
        assert dst.get_codespec("a", 2).spec == {"name": "a", "d": "2"}  # type: ignore[union-attr]
