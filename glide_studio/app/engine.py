"""The one seam between the app and the models: load them, run a request, list devices and models.

The real engine imports torch and glide_studio.pipelines lazily, inside the worker thread, so the
GUI starts instantly and tests can inject a fake engine with the same three methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from glide_studio.app.errors import ModelUnavailableError
from glide_studio.pipelines.request import Request, Step

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class ModelChoice:
    family: str
    label: str
    available: bool
    detail: str = ""


class Engine(Protocol):
    def devices(self) -> list[str]: ...

    def model_choices(self) -> list[ModelChoice]: ...

    def load_models(self, family: str, device: str) -> None:
        """Make the family's networks ready on the device. Slow: only ever called off the GUI thread."""

    def run(self, request: Request) -> Iterator[Step]: ...


def torch_devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return ["cpu"]
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{index}" for index in range(torch.cuda.device_count())] or ["cuda"]
    return found


class PipelineEngine:
    """Runs glide_studio.pipelines with models loaded by glide_studio.pipelines.models."""

    def __init__(self, weights_dir: Path | None = None) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir else WEIGHTS_DIR
        self._models = None
        self._loaded_key: tuple[str, str] | None = None
        self._devices: list[str] | None = None

    def devices(self) -> list[str]:
        if self._devices is None:
            self._devices = torch_devices()
        return list(self._devices)

    def model_choices(self) -> list[ModelChoice]:
        demo = any(self.weights_dir.glob("demo-*.safetensors"))
        choices = [ModelChoice("demo", "Demo (shapes world)", demo, "" if demo else "demo weights not found")]
        glide_ready, detail = self._glide_status()
        choices.append(ModelChoice("glide", "GLIDE (filtered)", glide_ready, detail))
        return choices

    def _glide_status(self) -> tuple[bool, str]:
        try:
            from glide_studio.checkpoints import registry  # written by another team
        except ImportError:
            return False, "checkpoint registry unavailable"
        is_ready = getattr(registry, "is_downloaded", None)
        if is_ready is None:
            return False, "checkpoint registry unavailable"
        try:
            ready = all(bool(is_ready(name)) for name in ("base-inpaint", "upsample-inpaint"))
        except Exception as error:  # noqa: BLE001 - status only; never block the window
            return False, str(error)
        return ready, "" if ready else "not downloaded"

    def load_models(self, family: str, device: str) -> None:
        key = (family, device)
        if self._loaded_key == key and self._models is not None:
            return
        try:
            from glide_studio.pipelines import models as pipeline_models
        except ImportError as error:
            raise ModelUnavailableError(f"The model pipelines are not installed ({error}).") from error
        loader = getattr(pipeline_models, "load_models", None) or pipeline_models.load_family
        self._models = None
        try:
            if family == "demo":
                self._models = loader(family, device=device, weights_dir=self.weights_dir)
            else:
                self._models = loader(family, device=device)
        except FileNotFoundError as error:
            raise ModelUnavailableError(f"Weights for the {family} model are missing: {error}") from error
        self._loaded_key = key

    def run(self, request: Request) -> Iterator[Step]:
        if self._models is None:
            raise ModelUnavailableError("No model is loaded.")
        from glide_studio import pipelines

        return pipelines.run(self._models, request)
