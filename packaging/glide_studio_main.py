"""Entry point of the frozen app: the same ``main`` as the ``glide-studio`` script."""

import sys

from glide_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
