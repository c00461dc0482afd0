"""The protocol fuzzer: mutated frames of real conversations against a broker process.

``python -m fuzz`` (``make fuzz``) runs it; see :mod:`fuzz.runner` for what it checks,
:mod:`fuzz.corpus` for the conversations and :mod:`fuzz.mutate` for the mutations.
"""
