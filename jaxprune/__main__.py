"""``python -m jaxprune`` is the ``jaxprune`` command."""

from jaxprune.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
