"""pytest plugin for kiltmq, registered through the ``pytest11`` entry point.

It will provide fixtures for users' own tests, such as an embedded broker.
"""
