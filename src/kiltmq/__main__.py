"""Allow ``python -m kiltmq``; same as the ``kiltmq`` command."""

from kiltmq.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
