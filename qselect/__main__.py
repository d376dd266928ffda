"""``python -m qselect``: the command line (see ``qselect.cli``)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
