"""``python -m governor``: the same as the ``governor`` command."""

from governor.cli import run

if __name__ == "__main__":
    run()
