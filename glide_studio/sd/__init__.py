"""The Stable Diffusion family: latent-space models run with diffusers components, behind the same
`run(models, request) -> Iterator[Step]` contract as GLIDE.

It is the optional `sd` extra (`pip install -e ".[sd]"`: diffusers, transformers, accelerate, huggingface_hub).
Importing this package is cheap and works without the extra: `available()` says whether it is installed and
`INSTALL_HINT` how to get it; diffusers is imported only by the modules that run or load a model.
"""

from __future__ import annotations

import importlib.util

from glide_studio.sd.errors import INSTALL_HINT, SDError, SDUnavailableError

REQUIRED_PACKAGES = ("diffusers", "transformers", "huggingface_hub", "safetensors")

__all__ = ["INSTALL_HINT", "REQUIRED_PACKAGES", "SDError", "SDUnavailableError", "available", "require"]


def available() -> bool:
    """Whether the sd extra's packages are installed (found, not imported: this stays instant)."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED_PACKAGES)


def require() -> None:
    if not available():
        missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
        raise SDUnavailableError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")
