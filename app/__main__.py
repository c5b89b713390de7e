"""``python -m app`` is the ``lastmile`` command."""

from app.cli import main

main()
