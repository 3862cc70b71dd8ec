"""The ``runyard`` command line: it parses and renders; the logic lives in ``runyard.core``.

Modules import only click at load time, so ``runyard --help`` stays fast; rich, the stores and
everything they need are imported inside the commands that use them.
"""
