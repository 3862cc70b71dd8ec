"""The ``http(s)://`` store: a runyard server's REST API behind the ``RunStore`` protocol.

(Being written by issue 13's helper C; the module exists so the import-linter contract that
names it holds.)
"""

from __future__ import annotations
