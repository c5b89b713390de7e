"""``python -m app`` is the ``lastmile`` command."""

from app.cli import main

if __name__ == "__main__":  # not when a spawned solver process imports it
    main()
