"""The ``download`` and ``models`` subcommands; ``glide_studio.cli`` calls ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..progress import ProgressBar
from .download import DEFAULT_TIMEOUT, DownloadProgress
from .errors import CheckpointError
from .registry import DEMO_NAMES, OFFICIAL_NAMES, REGISTRY, cached_paths, demo_weights_dir, get_spec
from .store import ModelStatus, ensure_checkpoint, list_models


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``download`` and ``models`` to an argparse subparsers object; each sets ``func(args) -> int``."""
    download = subparsers.add_parser(
        "download",
        help="download official GLIDE checkpoints into the cache",
        description="Download OpenAI's GLIDE checkpoints (resumable, sha256 recorded). "
        f"Names: {', '.join(OFFICIAL_NAMES)}. Without names: all of them.",
    )
    download.add_argument("names", nargs="*", metavar="NAME", help="checkpoints to download (default: all)")
    download.add_argument("--cache-dir", help="cache folder (default: $GLIDE_STUDIO_CACHE or the user cache)")
    download.add_argument(
        "--safetensors", action="store_true", help="convert each download to .safetensors (faster loading)"
    )
    download.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds of silence allowed")
    download.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    download.set_defaults(func=run_download)

    models = subparsers.add_parser(
        "models", help="list checkpoints: present, sizes, verified", description="List known checkpoints."
    )
    models.add_argument("--cache-dir", help="cache folder (default: $GLIDE_STUDIO_CACHE or the user cache)")
    models.add_argument(
        "--no-verify", action="store_true", help="do not hash the files (fast; 'verified' shows '-')"
    )
    models.set_defaults(func=run_models)


_Bar = ProgressBar


class _TqdmProgress:
    """Feeds DownloadProgress records to one tqdm bar."""

    def __init__(self, name: str, quiet: bool):
        self.name = name
        self.quiet = quiet
        self.bar: ProgressBar | None = None  # created at the first record, so a refusal prints no empty bar

    def __call__(self, record: DownloadProgress) -> None:
        if self.bar is None:
            self.bar = _Bar(desc=self.name, unit="B", unit_scale=True, unit_divisor=1024, disable=self.quiet)
        if record.bytes_total is not None and self.bar.total != record.bytes_total:
            self.bar.total = record.bytes_total
            self.bar.refresh()
        self.bar.update(record.bytes_done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_download(args: argparse.Namespace) -> int:
    names: Sequence[str] = args.names or OFFICIAL_NAMES
    for name in names:
        get_spec(name)  # unknown names fail before anything is downloaded
    failures = 0
    for name in names:
        if name in DEMO_NAMES:
            print(f"{name}: shipped with GLIDE Studio, nothing to download")
            continue
        progress = _TqdmProgress(name, args.quiet)
        try:
            path = ensure_checkpoint(name, progress=progress, cache=args.cache_dir, timeout=args.timeout)
        except CheckpointError as error:
            progress.close()
            print(f"{name}: error: {error}", file=sys.stderr)
            failures += 1
            continue
        progress.close()
        if args.safetensors and path.suffix != ".safetensors":
            from .convert import convert_to_safetensors  # torch: only when converting

            path = convert_to_safetensors(path)
            # The .pt is no longer needed; its sha256 record stays to check any later re-download.
            cached_paths(name, args.cache_dir)[0].unlink(missing_ok=True)
        print(f"{name}: {path}")
    return 1 if failures else 0


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _verified_cell(status: ModelStatus) -> str:
    if not status.present:
        return "-"
    return {True: "yes", False: "FAILED", None: "not recorded" if status.problem else "-"}[status.verified]


def status_table(statuses: Sequence[ModelStatus]) -> str:
    header = ("name", "kind", "present", "size", "download", "verified", "path")
    rows = [header]
    for s in statuses:
        rows.append((
            s.name,
            s.kind,
            "yes" if s.present else "no",
            format_size(s.size),
            "shipped" if s.source == "demo" else format_size(s.approx_size),
            _verified_cell(s),
            str(s.path) if s.path else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def run_models(args: argparse.Namespace) -> int:
    statuses = list_models(args.cache_dir, verify_hash=not args.no_verify)
    print(status_table(statuses))
    problems = [s for s in statuses if s.present and s.verified is False]
    for s in problems:
        print(f"{s.name}: {s.problem}", file=sys.stderr)
    missing = [s.name for s in statuses if not s.present and s.name in REGISTRY and s.source == "official"]
    if missing:
        print(f"not downloaded: {', '.join(missing)} (glide-studio download {' '.join(missing)})")
    absent_demos = [s.name for s in statuses if not s.present and s.source == "demo"]
    if absent_demos:
        print(f"demo weights not found in {demo_weights_dir()}: {', '.join(absent_demos)}")
    return 1 if problems else 0
