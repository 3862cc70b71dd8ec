"""The process layer: owner records, detached starts, executors, process-tree stop, the meter.

Everything runyard does with operating-system processes for any kind of run lives here, below
``core``, so command runs now and recorded runs next share one implementation of each.
"""
