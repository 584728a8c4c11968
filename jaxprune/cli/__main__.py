"""``python -m jaxprune.cli``: the ``jaxprune`` command."""

from jaxprune.cli import main

raise SystemExit(main())
