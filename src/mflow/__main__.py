"""``python -m mflow``: the ``mflow`` command line."""

from mflow.cli import main

if __name__ == "__main__":
    main()
