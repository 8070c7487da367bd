"""``python -m pgqueue`` is the ``pgqueue`` command."""

from pgqueue.cli import main

main()
