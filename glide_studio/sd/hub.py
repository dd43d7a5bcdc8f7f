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


def cached_folder(repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot of the repository when it holds the weights a run needs, else None (never fetches)."""
    repo_folder = cache_root() / ("models--" + repo_id.replace("/", "--"))
    ref = repo_folder / "refs" / revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else revision
    except OSError:
        return None
    folder = repo_folder / "snapshots" / commit
    needed = ("model_index.json", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
              "text_encoder/model.safetensors")
    return folder if all((folder / name).is_file() for name in needed) else None


def fetch(repo_id: str, *, progress_class=None, revision: str | None = None) -> Path:
    """The local folder of the repository's run files, downloading what is missing (a partial file left by a cut
    is resumed). `progress_class` is a tqdm class for the byte progress bars (None: huggingface_hub's own)."""
    return fetch_files(repo_id, FILE_PATTERNS, progress_class=progress_class, revision=revision)


def fetch_files(repo_id: str, patterns, *, progress_class=None, revision: str | None = None) -> Path:
    """The local snapshot folder holding the repository's files that match `patterns`, fetched where missing."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    kwargs = {"tqdm_class": progress_class} if progress_class is not None else {}
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
