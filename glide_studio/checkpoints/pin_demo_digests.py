"""(Re)write the pinned sha256 of every shipped demo model: ``python -m glide_studio.checkpoints.pin_demo_digests``.

Run it after training new demo weights into ``weights/``. Every ``<name>.safetensors`` that has its
``<name>.json`` beside it gets the file's digest under the json's "sha256" key, which the loader checks each
time (``integrity.verify_demo``). Weights holding NaN or infinity are refused, never pinned.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CheckpointError
from .integrity import pin_digest
from .registry import demo_weights_dir


def demo_files(folder: Path) -> list[tuple[Path, Path]]:
    """(weights, json) of every demo model in ``folder``, by name."""
    pairs = []
    for weights in sorted(folder.glob("*.safetensors")):
        meta = weights.with_suffix(".json")
        if meta.is_file():
            pairs.append((weights, meta))
    return pairs


def pin_demo_digests(folder: str | Path | None = None) -> dict[str, str]:
    """Pin the digest of every demo model in ``folder`` (default: the shipped weights folder); name → sha256."""
    folder = Path(folder) if folder is not None else demo_weights_dir()
    pairs = demo_files(folder)
    if not pairs:
        raise CheckpointError(f"no demo model (a .safetensors with its .json) in {folder}")
    return {weights.stem: pin_digest(weights, meta) for weights, meta in pairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glide_studio.checkpoints.pin_demo_digests",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, help="the weights folder (default: the shipped one)")
    args = parser.parse_args(argv)
    try:
        pinned = pin_demo_digests(args.folder)
    except CheckpointError as error:
        print(f"pin_demo_digests: error: {error}", file=sys.stderr)
        return 1
    for name, digest in pinned.items():
        print(f"{digest}  {name}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
