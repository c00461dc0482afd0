"""Benchmarks: one scenario per module, each with a ``main()``.

Run them all with ``python -m benchmarks``, or some with ``python -m benchmarks NAME...``.
"""
