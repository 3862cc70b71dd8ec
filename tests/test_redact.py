"""Store URLs shown anywhere never show a password, and are otherwise left as given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runyard.stores import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://:secret@h/db", "postgres://:***@h/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db?sslmode=require&password=secret", "postgresql://u@h/db?sslmode=require&password=***"),
        ("sqlite:///a/b/runyard.db", "sqlite:///a/b/runyard.db"),
        ("file:///x", "file:///x"),
        ("memory://name", "memory://name"),
    ],
)
def test_passwords_are_hidden_and_nothing_else_changes(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(password=st.text(alphabet=st.characters(blacklist_characters="/?#", codec="ascii"),
                        min_size=1, max_size=30))
def test_no_password_survives(password: str) -> None:
    url = f"postgresql://user:{password}@db.example:5432/runs"
    assert redact_url(url) == "postgresql://user:***@db.example:5432/runs"
