"""``python -m mflow``: the ``mflow`` command line."""

from mflow.cli._entry import mflow

if __name__ == "__main__":
    mflow()
