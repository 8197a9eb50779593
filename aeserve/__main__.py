"""``python -m aeserve``: the same as the ``aeserve`` console script."""

from aeserve.cli import main

raise SystemExit(main())
