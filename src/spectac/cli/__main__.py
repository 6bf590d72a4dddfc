"""``python -m spectac.cli``: the spectac command."""

from spectac.cli import main

main()
