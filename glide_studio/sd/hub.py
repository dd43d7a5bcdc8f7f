"""Fetching a diffusers repository from the Hugging Face Hub with huggingface_hub: only the files a run needs,
into its own cache (HF_HOME), resumed after a cut, with progress; HF_HUB_OFFLINE (or no network) uses what the
cache already holds."""

from __future__ import annotations

from pathlib import Path

from glide_studio.sd.errors import SDModelError
from glide_studio.sd.registry import FILE_PATTERNS


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cache_root() -> Path:
    """huggingface_hub's cache folder, found as it finds it (HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub) without importing it: the model picker asks at window start."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


RUN_FILES = ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
             "text_encoder/model.safetensors")


def cached_folder(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot of the repository when it holds the weights a run needs, else None (never fetches)."""
    return cached_files(repo_id, RUN_FILES, revision)


def cached_files(repo_id: str, needed, revision: str = "main") -> Path | None:
    """The cached snapshot of the repository when it holds every one of `needed`, else None (never fetches)."""
    repo_folder = cache_root() / ("models--" + repo_id.replace("/", "--"))
    ref = repo_folder / "refs" / revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else revision
    except OSError:
        return None
    folder = repo_folder / "snapshots" / commit
    return folder if all((folder / name).is_file() for name in needed) else None


def fetch(repo_id: str, *, progress_class=None, revision: str | None = None) -> Path:
    """The local folder of the repository's run files, downloading what is missing (a partial file left by a cut
    is resumed). `progress_class` is a tqdm class for the byte progress bars (None: huggingface_hub's own)."""
    return fetch_files(repo_id, FILE_PATTERNS, progress_class=progress_class, revision=revision)


def fetch_files(repo_id: str, patterns, *, progress_class=None, revision: str | None = None) -> Path:
    """The local snapshot folder holding the repository's files that match `patterns`, fetched where missing."""
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    kwargs = {"tqdm_class": progress_class} if progress_class is not None else {}
    # The endpoint and the cache are read now, not when huggingface_hub was imported, so that the picker's
    # "downloaded?" (cache_root) and the download agree in a long-running editor.
    kwargs.update(endpoint=os.environ.get("HF_ENDPOINT") or None, cache_dir=str(cache_root()))
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(patterns), **kwargs))
    except RepositoryNotFoundError:
        raise SDModelError(f"the Hub has no repository {repo_id!r} (or it needs a login: huggingface-cli login)") \
            from None
    except LocalEntryNotFoundError:
        where = "HF_HUB_OFFLINE is set" if offline() else "the Hub cannot be reached"
        raise SDModelError(f"{repo_id} is not in the Hugging Face cache and {where}") from None
    except (HfHubHTTPError, OSError) as error:
        raise SDModelError(f"downloading {repo_id} failed: {error}") from error


class DownloadCancelled(SDModelError):
    """The user stopped a download; what was fetched stays, and the next fetch goes on from it."""


def reporting_progress(report, cancel=None):
    """A tqdm class for `fetch` that sends the byte bars' progress to `report(done, total)` instead of a terminal
    (the editor's progress bar), and stops the download between two chunks once `cancel` (a threading.Event) is
    set. huggingface_hub adds every file's size to one byte bar, so its figures are the whole download's."""
    import io

    from tqdm import tqdm

    class ReportingProgress(tqdm):
        monitor_interval = 0  # no monitor thread (it would outlive the download)

        def __init__(self, *args, **kwargs):
            kwargs.update(disable=False, file=io.StringIO())
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("the download was cancelled")
            shown = super().update(n)
            if self.unit == "B" and self.total:
                report(int(self.n), int(self.total))
            return shown

    return ReportingProgress
