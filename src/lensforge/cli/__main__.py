"""``python -m lensforge.cli``: the same as the ``lensforge`` command."""

from lensforge.cli import main

main()
