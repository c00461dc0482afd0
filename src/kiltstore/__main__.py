"""``python -m kiltstore SERVICE``: see :mod:`kiltstore.cli`."""

from kiltstore.cli import main

raise SystemExit(main())
