"""Recorded runs: versions of a workspace, built environments, isolated execution with every
output kept by hash, export as a BagIt RO-Crate, and reproduction.

A kind of run beside workflows, tracking and command runs (none imports another). Versions and
recorded runs are runs of the data model, so every store keeps them and every tool shows them.
"""
