"""The one record of a run: the request, the context it ran in, and digests of its input pictures.

`RunRecord` is what PNG metadata, project history, the journal and forks store; `codec.encode` /
`codec.decode` map it to and from JSON generically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from dataclasses import dataclass, field

import numpy as np

from glide_studio import __version__
from glide_studio.pipelines.request import Request
from glide_studio.runs.codec import decode, encode, specs


@dataclass(frozen=True)
class InputDigest:
    """sha256 over an input array's dtype, shape and pixels, and the file it came from when known."""

    sha256: str
    shape: tuple[int, ...] = ()
    path: str | None = None


@dataclass(frozen=True)
class RunContext:
    """What besides the request decides the pixels: where and in what precision the networks ran."""

    device: str = "cpu"
    precision: str | None = None
    """fp32, bf16 or fp16 as run; None in records written before precision was recorded."""
    versions: dict[str, str] = field(default_factory=dict, compare=False)
    model_hash: str = ""
    """A1111's short hash of the weights file (Stable Diffusion models); "" where not known."""
    compiled: bool = False
    """The networks ran as torch.compile kernels (the editor's demo networks, once compiled): those fuse and
    reorder arithmetic, so their pixels differ from an eager run's by rounding. `repeat` runs eager and says so."""

    @classmethod
    def here(cls, device: str, precision: str, model_hash: str = "", *, compiled: bool = False) -> RunContext:
        import torch

        versions = {"glide_studio": __version__, "torch": torch.__version__, "python": platform.python_version()}
        return cls(str(device), precision, versions, model_hash, compiled)


@dataclass(frozen=True)
class Resumed:
    """A run that went on from a paused one after `step` (0-based): a fork. `changed` names the request fields
    and input pictures that differ from the paused run's (empty: the same run, paused and resumed)."""

    step: int
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRecord:
    request: Request
    context: RunContext = RunContext()
    candidate: int = 0
    inputs: dict[str, InputDigest] = field(default_factory=dict)
    resumed: Resumed | None = None

    @classmethod
    def of(cls, request: Request, context: RunContext, candidate: int = 0,
           paths: dict[str, str] | None = None, resumed: Resumed | None = None) -> RunRecord:
        return cls(request, context, candidate, digest_inputs(request, paths), resumed)

    def for_candidate(self, candidate: int) -> RunRecord:
        return dataclasses.replace(self, candidate=candidate)


def pixel_fields() -> tuple[str, ...]:
    return tuple(found.name for found in specs(Request) if found.is_pixels)


def array_digest(array: np.ndarray, name: str = "image") -> str:
    """Masks are hashed as booleans: any nonzero value means painted."""
    if name == "mask":
        array = np.asarray(array) != 0
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array.reshape(-1).view(np.uint8)))
    return digest.hexdigest()


def digest_inputs(request: Request, paths: dict[str, str] | None = None) -> dict[str, InputDigest]:
    found = {}
    for name in pixel_fields():
        array = getattr(request, name)
        if array is not None:
            path = (paths or {}).get(name)
            found[name] = InputDigest(array_digest(array, name), tuple(array.shape), path and str(path))
    return found


def changed_fields(before: Request, after: Request) -> tuple[str, ...]:
    """The request fields and input pictures (by digest) in which `after` differs from `before`."""
    old, new = encode(before), encode(after)
    names = [name for name in new if old.get(name) != new[name]]
    for name in pixel_fields():
        a, b = getattr(before, name), getattr(after, name)
        if (a is None) != (b is None) or (a is not None and array_digest(a, name) != array_digest(b, name)):
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class CandidateScore:
    similarity: float
    """Cosine similarity of the candidate's region and the caption (higher is a better match)."""
    background: float | None = None
    """For an inpaint: the best cosine similarity of the region with a bare-background caption."""
    floor: float | None = None
    """For an inpaint, where the model's CLIP has one: the similarity below which a region did not show its
    caption's object on held-out tasks (weights/MODEL_CARD.md says how it was chosen)."""

    @property
    def missed(self) -> bool:
        """The inpainted region looks more like bare background than like its caption, or matches it less than
        any region that showed the object did."""
        if self.background is None:
            return False
        return self.similarity <= self.background or (self.floor is not None and self.similarity < self.floor)


def decode_record(data, where: str = "") -> RunRecord:
    """A run record from its JSON object (a journal, a project, a PNG): a field the record lacks, because it was
    written before the field existed, reads as those runs went (the field's `unrecorded`), not as today's default."""
    return decode(RunRecord, data, where=where, recorded=True)
