"""``python -m lensr.cli``: the same as the ``lensr`` command."""

from lensr.cli import main

main()
