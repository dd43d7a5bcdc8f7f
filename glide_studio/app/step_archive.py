"""The steps of past runs, kept on disk beside the document's journal: each step's preview and, for forking, its
run state, so the timeline can scrub an older run and "Fork from here" can go on from one of its steps.

They live in a SQLite file of their own in the journal's folder (`steps.sqlite`, WAL, blobs by sha256), not in the
journal itself: a run's steps are tens of MB, and while they were written into the journal a stroke's transaction
queued behind them for up to 87 ms (bench_step_archive); in a file of their own nothing waits on them but the disk.
Writes happen on a thread of their own with its own connection, so the GUI thread only hands over a run's steps.
Blobs go in small transactions; the run's rows then go in one transaction that makes the whole run visible at
once, so a kill -9 leaves either all of a run's steps or none (blobs left without rows are swept at the next
write). A size cap drops the oldest runs' states first, then their previews. States are stored as safetensors
plus JSON: nothing here is ever unpickled. The steps are a cache: a project file does not carry them.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from glide_studio.app.journal import JournalError, digest_of
from glide_studio.diffusion import NoiseState, SamplerState
from glide_studio.pipelines.state import RunState

STEPS_FILE = "steps.sqlite"
"""The archive's file name, beside the journal it belongs to."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (run TEXT NOT NULL, idx INTEGER NOT NULL, total INTEGER NOT NULL,
                                  stage TEXT NOT NULL, preview TEXT NOT NULL, state TEXT, previous TEXT,
                                  meta TEXT NOT NULL, archived REAL NOT NULL, PRIMARY KEY (run, idx));
CREATE TABLE IF NOT EXISTS step_blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL, data BLOB NOT NULL);
"""
DEFAULT_CAP_MB = 512
"""What the steps of past runs may take on disk unless the user chose otherwise (Edit ▸ Keep steps of past runs)."""
_CHUNK_BYTES = 2**19
"""Blobs per transaction: short enough that a stroke journalled meanwhile never waits long for the lock."""
_CHECKPOINT_BYTES = 8 * 2**20
"""The writer copies the write-ahead log into the database after this much, so the log stays small."""
_IDLE_CHECKPOINT_S = 5.0


@dataclass(frozen=True)
class StoredStep:
    """Where a step lives in the archive: its blobs' digests (state and previous None when only the preview is
    kept) and the state's description."""

    preview: str
    state: str | None
    previous: str | None
    meta: dict = field(repr=False)


@dataclass(frozen=True)
class TimelineStep:
    """One step of a run, kept for scrubbing (its preview) and forking (its state, in memory or in the archive)."""

    index: int
    total: int
    stage: str
    preview: np.ndarray = field(repr=False)
    state: object | None = field(default=None, repr=False)
    stored: StoredStep | None = field(default=None, repr=False)
    """Set for a step read back from the archive: its state is loaded from there when it is forked from."""

    @property
    def level(self) -> float | None:
        """How noisy the run's x was after this step, as a strength (for the strength scrubber)."""
        if self.state is not None:
            return getattr(self.state, "level", None)
        return None if self.stored is None else self.stored.meta.get("level")

    @property
    def can_fork(self) -> bool:
        return self.state is not None or (self.stored is not None and self.stored.state is not None)


# -- states as tensors and JSON ----------------------------------------------------------------------------

def _tensor(value: torch.Tensor) -> torch.Tensor:
    return value.detach().to("cpu").contiguous().clone()


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def encode_state(state: object) -> tuple[dict, bytes, np.ndarray | None] | None:
    """(description, safetensors bytes, the previous stage's result) of a run state; None for a kind of state
    this archive does not know (that step keeps its preview only)."""
    from glide_studio.app.fake_engine import FakeState

    if isinstance(state, FakeState):
        return {"kind": "fake", "next_index": state.next_index}, save_tensors({"rng": _tensor(state.rng)}), None
    from glide_studio.sd.state import SDRunState

    if isinstance(state, SDRunState):
        return _encode_sd_state(state)
    if not isinstance(state, RunState):
        return None
    sampler = state.sampler
    tensors = {"x": _tensor(sampler.x)}
    if sampler.previous_x0 is not None:
        tensors["previous_x0"] = _tensor(sampler.previous_x0)
    noise = None
    if sampler.noise is not None:
        noise = {"kind": sampler.noise.kind, "draws": sampler.noise.draws, "device": sampler.noise.device,
                 "rows": sampler.noise.rows, "rng": sampler.noise.rng is not None}
        if sampler.noise.rng is not None:
            tensors["rng"] = _bytes_tensor(sampler.noise.rng)
    anchor = getattr(state, "reuse_anchor", None)
    if anchor is not None:
        tensors["anchor_x"], tensors["anchor_timesteps"] = _tensor(anchor.x), _tensor(anchor.timesteps)
    meta = {"kind": "run", "mode": state.mode, "stage": state.stage, "stage_number": state.stage_number,
            "level": state.level, "anchor_step": None if anchor is None else anchor.step,
            "sampler": {"sampler": sampler.sampler, "chain": sampler.chain, "t": sampler.t, "index": sampler.index,
                        "previous_h": sampler.previous_h, "noise": noise}}
    return meta, save_tensors(tensors), state.previous


def decode_state(meta: dict, payload: bytes, previous: np.ndarray | None) -> object:
    tensors = load_tensors(payload)
    if meta["kind"] == "fake":
        from glide_studio.app.fake_engine import FakeState

        return FakeState(int(meta["next_index"]), tensors["rng"])
    if meta["kind"] == "sd":
        return _decode_sd_state(meta, tensors)
    spec = meta["sampler"]
    noise = None
    if spec["noise"] is not None:
        found = spec["noise"]
        rng = bytes(tensors["rng"].numpy()) if found["rng"] else None
        noise = NoiseState(str(found["kind"]), int(found["draws"]), rng, str(found["device"]), int(found["rows"]))
    sampler = SamplerState(str(spec["sampler"]), str(spec["chain"]), tensors["x"], int(spec["t"]),
                           int(spec["index"]), noise, tensors.get("previous_x0"), spec["previous_h"])
    anchor = None
    if meta.get("anchor_step") is not None:
        from glide_studio.diffusion.feature_reuse import ReuseAnchor

        anchor = ReuseAnchor(int(meta["anchor_step"]), tensors["anchor_x"], tensors["anchor_timesteps"])
    return RunState(str(meta["mode"]), str(meta["stage"]), int(meta["stage_number"]), sampler, previous,
                    reuse_anchor=anchor, level=meta.get("level"))


def _encode_sd_state(state) -> tuple[dict, bytes, None] | None:
    """A Stable Diffusion state: its latent, each generator's RNG, the sketch-to-image start picture and the
    scheduler's snapshot, a tree of tensors and plain values kept as JSON with its tensors named into the
    safetensors (None when the scheduler holds a value of another kind: that step keeps its preview only)."""
    tensors: dict[str, torch.Tensor] = {}
    strides: dict[str, list[int]] = {}

    def keep(name: str, tensor: torch.Tensor) -> None:
        # The layout is part of the state: a channels-last latent fed back contiguous makes the convolutions pick
        # other kernels, and the run no longer resumes bit for bit.
        tensors[name] = _tensor(tensor)
        if not tensor.is_contiguous():
            strides[name] = list(tensor.stride())

    keep("latents", state.latents)
    for number, generator in enumerate(state.generators):
        keep(f"generator.{number}", generator)
    if state.start_image is not None:
        keep("start_image", torch.from_numpy(np.ascontiguousarray(state.start_image)))

    def tree(value):
        if torch.is_tensor(value):
            name = f"scheduler.{len(tensors)}"
            keep(name, value)
            return {"tensor": name}
        if isinstance(value, (list, tuple)):
            return {"list" if isinstance(value, list) else "tuple": [tree(item) for item in value]}
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            return {"dict": {key: tree(item) for key, item in value.items()}}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        raise TypeError(type(value).__name__)

    try:
        scheduler = tree(state.scheduler)
    except TypeError:
        return None
    meta = {"kind": "sd", "mode": state.mode, "chain": state.chain, "index": state.index, "stage": state.stage,
            "stage_number": state.stage_number, "generators": len(state.generators), "scheduler": scheduler,
            "strides": strides}
    return meta, save_tensors(tensors), None


def _decode_sd_state(meta: dict, tensors: dict[str, torch.Tensor]):
    from glide_studio.sd.state import SDRunState

    for name, stride in meta.get("strides", {}).items():
        dense = tensors[name]
        if _dense_layout(dense.shape, stride):
            tensors[name] = torch.empty_strided(dense.shape, tuple(stride), dtype=dense.dtype).copy_(dense)

    def value_of(node: dict):
        (kind, content), = node.items()
        if kind == "tensor":
            return tensors[content]
        if kind in ("list", "tuple"):
            items = [value_of(item) for item in content]
            return items if kind == "list" else tuple(items)
        if kind == "dict":
            return {key: value_of(item) for key, item in content.items()}
        return content

    start = tensors.get("start_image")
    return SDRunState(str(meta["mode"]), str(meta["chain"]), int(meta["index"]), tensors["latents"],
                      value_of(meta["scheduler"]),
                      tuple(tensors[f"generator.{number}"] for number in range(int(meta["generators"]))),
                      None if start is None else start.numpy(), str(meta["stage"]), int(meta["stage_number"]))


def _dense_layout(shape, stride) -> bool:
    """Whether `stride` lays `shape` out densely (a permutation of the dimensions), as a real tensor's did."""
    if len(stride) != len(shape) or any(not isinstance(step, int) or step < 1 for step in stride):
        return False
    expected = 1
    for size, step in sorted(zip(shape, stride, strict=True), key=lambda pair: pair[1]):
        if size > 1 and step != expected:
            return False
        expected *= size
    return True


def _array_blob(array: np.ndarray) -> tuple[dict, bytes]:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return {"shape": list(array.shape)}, zlib.compress(array.tobytes(), 1)


def _array(shape, payload: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(payload), dtype=np.uint8).reshape(tuple(int(n) for n in shape)).copy()


def _yield_cores_to_others() -> None:
    """The calling thread runs at the lowest priority (Linux lets a thread lower its own): a run's steps are
    written as it ends and as the next one starts, and on two cores the writer took a core from the window,
    which waited up to 12 ms for one (bench_gui_latency). Elsewhere (where a thread id is no process id), or if
    refused, it runs as it was."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


# -- the archive ---------------------------------------------------------------------------------------------

class StepArchive(QObject):
    archived = Signal(str)
    """A run's steps are on disk now (its id); emitted from the writer thread."""
    failed = Signal(str)
    """A write failed (full disk, …): what to tell the user. The run itself is safe in the journal."""

    @classmethod
    def beside(cls, journal_path: str | Path, cap_bytes: int = DEFAULT_CAP_MB * 2**20,
               parent: QObject | None = None) -> StepArchive:
        """The archive of the document whose journal is at `journal_path`."""
        return cls(Path(journal_path).with_name(STEPS_FILE), cap_bytes, parent)

    def __init__(self, path: str | Path, cap_bytes: int = DEFAULT_CAP_MB * 2**20,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self._cap = int(cap_bytes)
        self._queue: queue.Queue = queue.Queue()
        try:
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._reader.execute("PRAGMA journal_mode=WAL")
            self._reader.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise JournalError(f"{self.path} cannot keep steps ({error})") from error
        self._thread = threading.Thread(target=self._write_loop, name="glide-studio-steps", daemon=True)
        self._thread.start()

    # --- the GUI thread's side ---------------------------------------------------------------------------
    @property
    def cap_bytes(self) -> int:
        return self._cap

    def set_cap(self, cap_bytes: int) -> None:
        """Takes effect at once (an eviction pass on the writer thread) and for every later run."""
        self._cap = max(0, int(cap_bytes))
        self._queue.put(("evict", None, None))

    def put(self, run_id: str, steps: list[TimelineStep]) -> None:
        """Hands a run's steps to the writer (rows of a run already stored are replaced); returns at once."""
        self._queue.put(("put", run_id, list(steps)))

    def flush(self, timeout: float = 30.0) -> bool:
        """Waits until everything handed over is written (tests, closing a document on purpose)."""
        done = threading.Event()
        self._queue.put(("flush", done, None))
        return done.wait(timeout)

    def close(self, keep_pending: bool = False) -> None:
        """Stops the writer; what is still queued is dropped unless `keep_pending`."""
        if not keep_pending:
            with self._queue.mutex:
                self._queue.queue.clear()
        self._queue.put(("stop", None, None))
        self._thread.join(60)
        self._reader.close()

    def runs(self) -> list[str]:
        rows = self._reader.execute("SELECT run FROM steps GROUP BY run ORDER BY MAX(archived)").fetchall()
        return [str(row[0]) for row in rows]

    def has_run(self, run_id: str) -> bool:
        return self._reader.execute("SELECT 1 FROM steps WHERE run = ? LIMIT 1", (run_id,)).fetchone() is not None

    def size_bytes(self) -> int:
        return int(self._reader.execute("SELECT COALESCE(SUM(size), 0) FROM step_blobs").fetchone()[0])

    def timeline(self, run_id: str) -> list[TimelineStep]:
        """A stored run's steps with their previews (states stay on disk until forked from)."""
        rows = self._reader.execute("SELECT idx, total, stage, preview, state, previous, meta FROM steps "
                                    "WHERE run = ? ORDER BY idx", (run_id,)).fetchall()
        steps = []
        for index, total, stage, preview, state, previous, meta in rows:
            meta = json.loads(meta)
            payload = self._blob(preview)
            if payload is None:
                continue
            stored = StoredStep(preview, state, previous, meta)
            steps.append(TimelineStep(int(index), int(total), str(stage), _array(meta["preview_shape"], payload),
                                      stored=stored))
        return steps

    def load_state(self, step: TimelineStep) -> object | None:
        """The state of a step read back by `timeline`, or None when the cap has dropped it since."""
        stored = step.stored
        if stored is None or stored.state is None:
            return None
        payload = self._blob(stored.state)
        previous = None
        if stored.previous is not None:
            raw = self._blob(stored.previous)
            if raw is None:
                return None
            previous = _array(stored.meta["previous_shape"], raw)
        return None if payload is None else decode_state(stored.meta["state"], payload, previous)

    def _blob(self, digest: str) -> bytes | None:
        row = self._reader.execute("SELECT data FROM step_blobs WHERE digest = ?", (digest,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- the writer thread ---------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        _yield_cores_to_others()
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run between transactions, never inside one
        try:
            while True:
                try:
                    kind, first, second = self._queue.get(timeout=_IDLE_CHECKPOINT_S)
                except queue.Empty:
                    self._checkpoint(db)
                    continue
                if kind == "stop":
                    return
                if kind == "flush":
                    first.set()
                    continue
                try:
                    if kind == "put":
                        self._write_run(db, first, second)
                    self._evict(db, keep=first if kind == "put" else None)
                    self._checkpoint(db)
                except Exception as error:  # noqa: BLE001 - the writer outlives any one run's failure
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    self.failed.emit(f"The steps of the last run could not be kept on disk ({error}).")
                    continue
                if kind == "put":
                    self.archived.emit(first)
        finally:
            db.close()

    @staticmethod
    def _checkpoint(db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # a busy database is checkpointed next time

    def _write_run(self, db: sqlite3.Connection, run_id: str, steps: list[TimelineStep]) -> None:
        rows, blobs = [], {}
        for step in steps:
            preview_meta, preview = _array_blob(step.preview)
            preview_digest = digest_of(preview)
            blobs[preview_digest] = preview
            meta = {"preview_shape": preview_meta["shape"], "level": step.level}
            state_digest = previous_digest = None
            encoded = None if step.state is None else encode_state(step.state)
            if encoded is not None:
                state_meta, payload, previous = encoded
                state_digest = digest_of(payload)
                blobs[state_digest] = payload
                meta["state"] = state_meta
                if previous is not None:
                    previous_meta, raw = _array_blob(previous)
                    previous_digest = digest_of(raw)
                    blobs[previous_digest] = raw
                    meta["previous_shape"] = previous_meta["shape"]
            elif step.stored is not None and step.stored.state is not None:  # a forked run's shared steps
                state_digest, previous_digest = step.stored.state, step.stored.previous
                meta.update({key: step.stored.meta[key] for key in ("state", "previous_shape")
                             if key in step.stored.meta})
            rows.append((run_id, step.index, step.total, step.stage, preview_digest, state_digest, previous_digest,
                         json.dumps(meta), time.time()))
        self._insert_blobs(db, blobs)
        self._insert_rows(db, rows)

    @staticmethod
    def _insert_rows(db: sqlite3.Connection, rows: list[tuple]) -> None:
        """The run's rows in one transaction: the whole run appears at once (its blobs are in already)."""
        db.execute("BEGIN IMMEDIATE")
        missing = {digest for row in rows for digest in row[4:7] if digest is not None
                   and db.execute("SELECT 1 FROM step_blobs WHERE digest = ?", (digest,)).fetchone() is None}
        db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [row if not missing.intersection(row[5:7]) else (*row[:5], None, None, *row[7:])
                        for row in rows if row[4] not in missing])
        db.execute("COMMIT")

    def _insert_blobs(self, db: sqlite3.Connection, blobs: dict[str, bytes]) -> None:
        pending, size, written = [], 0, 0
        for digest, payload in blobs.items():
            if db.execute("SELECT 1 FROM step_blobs WHERE digest = ?", (digest,)).fetchone() is not None:
                continue
            pending.append((digest, len(payload), payload))
            size += len(payload)
            if size >= _CHUNK_BYTES:
                _commit_blobs(db, pending)
                pending, size, written = [], 0, written + size
                if written >= _CHECKPOINT_BYTES:
                    self._checkpoint(db)
                    written = 0
        _commit_blobs(db, pending)

    def _evict(self, db: sqlite3.Connection, keep: str | None) -> None:
        """Past the cap: the oldest runs' states go first (the newest run's last), then whole older runs."""
        db.execute("BEGIN IMMEDIATE")
        try:
            _sweep(db)
            runs = [str(row[0]) for row in db.execute("SELECT run FROM steps GROUP BY run ORDER BY MAX(archived)")]
            order = [run for run in runs if run != keep] + ([keep] if keep in runs else [])
            for run in order:
                if _stored_bytes(db) <= self._cap:
                    break
                db.execute("UPDATE steps SET state = NULL, previous = NULL WHERE run = ?", (run,))
                _sweep(db)
            for run in order[:-1] if keep in runs else order:
                if _stored_bytes(db) <= self._cap:
                    break
                db.execute("DELETE FROM steps WHERE run = ?", (run,))
                _sweep(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _commit_blobs(db: sqlite3.Connection, rows: list[tuple[str, int, bytes]]) -> None:
    if not rows:
        return
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT OR IGNORE INTO step_blobs (digest, size, data) VALUES (?, ?, ?)", rows)
    db.execute("COMMIT")


def _sweep(db: sqlite3.Connection) -> None:
    """Blobs no step refers to (evicted, or written by a process killed before its rows were)."""
    db.execute("DELETE FROM step_blobs WHERE digest NOT IN (SELECT preview FROM steps UNION "
               "SELECT state FROM steps WHERE state IS NOT NULL UNION "
               "SELECT previous FROM steps WHERE previous IS NOT NULL)")


def _stored_bytes(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COALESCE(SUM(size), 0) FROM step_blobs").fetchone()[0])
