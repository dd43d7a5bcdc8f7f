"""Input pictures kept by their digest, so that a result exported from the editor can be repeated later
(``glide-studio repeat``) without the user keeping the picture, mask and sketch as files themselves.

One PNG per distinct input under the per-user data folder (``$GLIDE_STUDIO_DATA`` overrides it), written
atomically; a file is trusted only when its pixels still give its digest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import platformdirs
from PIL import Image, UnidentifiedImageError

from glide_studio.atomic_files import write_atomically
from glide_studio.runs.record import RunRecord, array_digest

DATA_ENV = "GLIDE_STUDIO_DATA"


def data_dir() -> Path:
    override = os.environ.get(DATA_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir("glide-studio", False))


class InputStore:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir() / "inputs"

    def _path(self, digest: str) -> Path:
        return self.root / f"{digest}.png"

    def put(self, name: str, array: np.ndarray) -> str:
        """Stores the array (if not stored yet) and returns its digest."""
        digest = array_digest(array, name)
        path = self._path(digest)
        if path.is_file():
            return digest
        picture = np.where(np.asarray(array) != 0, 255, 0).astype(np.uint8) if name == "mask" else array
        self.root.mkdir(parents=True, exist_ok=True)
        pixels = Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8))
        write_atomically(path, lambda file: pixels.save(file, format="PNG"))
        return digest

    def put_inputs(self, record: RunRecord) -> None:
        for name, array in _arrays(record).items():
            self.put(name, array)

    def get(self, name: str, digest: str) -> np.ndarray | None:
        """The stored array with this digest, or None when it is missing or no longer matches."""
        path = self._path(digest)
        try:
            with Image.open(path) as picture:
                picture.load()
                array = np.asarray(picture).copy()
        except (FileNotFoundError, UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None
        return array if array_digest(array, name) == digest else None


def _arrays(record: RunRecord) -> dict[str, np.ndarray]:
    return {name: getattr(record.request, name) for name in record.inputs if getattr(record.request, name) is not None}
