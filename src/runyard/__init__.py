"""runyard: one system for computational runs."""

__version__ = "0.1.0"
