"""The ``kiltmq`` command line."""
