"""The parts of ``tools/gen_spec.py``: the AMQP XML read into a model (:mod:`specgen.model`),
and the Python emitted for it (:mod:`specgen.emit`, :mod:`specgen.methods`,
:mod:`specgen.properties`)."""
