"""``python -m glide_studio`` and the ``glide-studio`` script."""

from __future__ import annotations

import sys

from glide_studio.cli import main

if __name__ == "__main__":
    sys.exit(main())
