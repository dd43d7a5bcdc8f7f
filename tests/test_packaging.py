"""The wheel as a user installs it: built from the sources, installed into a fresh venv, run from there.

The venv gets only the wheel's own files; the dependencies (torch, PySide6, ...) come from the
environment running the tests through a .pth file listing its site-packages folders. Lines of a .pth
file are added to sys.path as they are, without reading the .pth files inside them, so an editable
install of the checkout in that environment stays invisible; every command runs from a temporary
folder, and the tests check that ``glide_studio`` is imported from the venv.

Two wheels are built: one with stand-in demo models (random weights of the demo architectures, made in
a temporary folder) so that the install path is always exercised, and one with the checkout's real
``weights/``, whose demo run skips until the trained weights exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO_NAMES = ("demo-base-inpaint", "demo-upsample-inpaint")
PROMPT = "a red circle"
# Generous: a cold start imports torch and Qt-free parts of the app on a busy 2-core machine.
COMMAND_TIMEOUT = 300


def _offline_build_possible() -> bool:
    return (
        importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
        or importlib.util.find_spec("wheel") is not None
    )


def _copy_sources(dest: Path, with_real_weights: bool) -> Path:
    """What pip would read from a checkout, copied so that building leaves no build/ folder in it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "glide_studio", dest / "glide_studio", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    if (REPO / "resources").is_dir():
        shutil.copytree(REPO / "resources", dest / "resources", ignore=ignore)
    if with_real_weights and (REPO / "weights").is_dir():
        shutil.copytree(REPO / "weights", dest / "weights")
    return dest


def _build_wheel(source: Path, out_dir: Path) -> Path:
    if not _offline_build_possible():
        message = "building the wheel offline needs setuptools>=70.1 or wheel (pip install -e '.[dev]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run(
        [*command, "--wheel-dir", str(out_dir), str(source)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    wheels = list(out_dir.glob("glide_studio-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out_dir}, found {wheels}"
    return wheels[0]


def _write_stand_in_demo_models(folder: Path) -> None:
    """Random weights of the two demo architectures, saved as the trainer exports them (fp16 + json)."""
    import torch
    from safetensors.torch import save_file

    from glide_studio.models import build_model
    from glide_studio.training.demo_configs import DEMO_OPTIONS

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name in DEMO_NAMES:
        model = build_model(dict(DEMO_OPTIONS[name]))
        weights = {key: value.to(torch.float16).contiguous() for key, value in model.state_dict().items()}
        save_file(weights, str(folder / f"{name}.safetensors"), metadata={"name": name})
        meta = {"name": name, "options": DEMO_OPTIONS[name], "training_steps": 0}
        (folder / f"{name}.json").write_text(json.dumps(meta), encoding="utf-8")
    from glide_studio.checkpoints.pin_demo_digests import pin_demo_digests

    pin_demo_digests(folder)
    (folder / "MODEL_CARD.md").write_text("# Stand-in demo models (random weights, tests only)\n")


def _environment_site_folders() -> list[str]:
    """The site-packages folders of the interpreter running the tests (a venv's or not); CI's venv sits
    inside the checkout, which is fine: only the checkout's own root would expose its glide_studio."""
    folders = []
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path.name in ("site-packages", "dist-packages") and path.is_dir():
            folders.append(str(path))
    return list(dict.fromkeys(folders))


class Venv:
    """A venv without pip whose sys.path ends with the test environment's packages."""

    def __init__(self, root: Path, work_dir: Path) -> None:
        self.root = root
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=COMMAND_TIMEOUT
        )
        bin_dir = "Scripts" if os.name == "nt" else "bin"
        self.python = root / bin_dir / ("python.exe" if os.name == "nt" else "python")
        paths = json.loads(self.run_python("import json, sysconfig; print(json.dumps(sysconfig.get_paths()))"))
        self.site_packages = Path(paths["purelib"])
        self.scripts = Path(paths["scripts"])
        (self.site_packages / "_test_environment_packages.pth").write_text(
            "\n".join(_environment_site_folders()) + "\n", encoding="utf-8"
        )

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PYTHONPATH", "PYTHONHOME", "GLIDE_STUDIO_DEMO_WEIGHTS"):
            env.pop(name, None)
        return env

    def run(self, *command: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(part) for part in command],
            cwd=self.work_dir,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    def run_python(self, code: str) -> str:
        result = self.run(self.python, "-c", code)
        assert result.returncode == 0, f"venv python failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout.strip()

    def install(self, wheel: Path) -> None:
        # pip comes from the test environment (through the .pth) and installs into this venv;
        # --ignore-installed so that an install of the checkout seen there is neither used nor removed.
        result = self.run(
            self.python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel
        )
        assert result.returncode == 0, f"installing {wheel.name} failed:\n{result.stdout}\n{result.stderr}"

    def script(self, name: str) -> Path:
        return self.scripts / (f"{name}.exe" if os.name == "nt" else name)

    def installed_locations(self) -> dict[str, str]:
        code = (
            "import json, glide_studio\n"
            "from glide_studio.checkpoints.registry import demo_weights_dir\n"
            "print(json.dumps({'package': glide_studio.__file__, 'weights': str(demo_weights_dir())}))"
        )
        return json.loads(self.run_python(code))


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    image = Image.new("RGB", (96, 96), (233, 226, 208))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 50, 60, 90), fill=(46, 86, 196))
    mask = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(mask).ellipse((30, 6, 70, 46), fill=255)
    image_path, mask_path = folder / "picture.png", folder / "mask.png"
    image.save(image_path)
    mask.save(mask_path)
    return image_path, mask_path


def _run_demo_inpaint(venv: Venv) -> Path:
    image_path, mask_path = _write_inputs(venv.work_dir)
    output = venv.work_dir / "out.png"
    result = venv.run(
        venv.script("glide-studio"), "inpaint", "--image", image_path, "--mask", mask_path,
        "--prompt", PROMPT, "--steps", "4", "--upsample-steps", "3", "--device", "cpu",
        "--quiet", "--output", output,
    )  # fmt: skip
    assert result.returncode == 0, f"glide-studio inpaint failed:\n{result.stdout}\n{result.stderr}"
    return output


def _assert_result_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        record = json.loads(image.text["glide_studio"])
        pixels = np.asarray(image.convert("RGB"))
    assert record["request"]["prompt"] == PROMPT
    assert record["request"]["mode"] == "inpaint"
    assert record["request"]["steps"] == 4 and record["request"]["upsample_steps"] == 3
    assert record["request"]["base_model"] == "demo-base-inpaint"
    assert record["app_version"]
    assert pixels.shape == (96, 96, 3)


def _assert_installed_from_venv(venv: Venv) -> dict[str, str]:
    locations = venv.installed_locations()
    package = Path(locations["package"]).resolve()
    assert venv.site_packages.resolve() in package.parents, f"glide_studio imported from {package}, not the venv"
    return locations


@pytest.fixture(scope="module")
def stand_in_install(tmp_path_factory) -> tuple[Venv, Path]:
    base = tmp_path_factory.mktemp("stand_in")
    source = _copy_sources(base / "src", with_real_weights=False)
    _write_stand_in_demo_models(source / "weights")
    wheel = _build_wheel(source, base / "dist")
    venv = Venv(base / "venv", base / "work")
    venv.install(wheel)
    return venv, wheel


def test_wheel_holds_code_weights_resources_and_the_script(stand_in_install):
    _venv, wheel = stand_in_install
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n) for n in names if n.endswith(".dist-info/entry_points.txt"))
    for name in DEMO_NAMES:
        assert f"glide_studio/weights/{name}.safetensors" in names
        assert f"glide_studio/weights/{name}.json" in names
    assert "glide_studio/weights/MODEL_CARD.md" in names
    assert "glide_studio/resources/icons/glide-studio.png" in names
    assert "glide_studio/resources/icons/glide-studio.svg" in names
    # Every code package of the checkout is in the wheel (the package list is computed, not written).
    for init in sorted((REPO / "glide_studio").rglob("__init__.py")):
        assert init.relative_to(REPO).as_posix() in names, f"{init.parent.name} missing from the wheel"
    assert not any(n.startswith(("weights/", "resources/", "tests/")) for n in names)
    assert b"glide-studio = glide_studio.__main__:main" in entry_points


def test_installed_wheel_finds_its_own_weights_and_runs_a_headless_inpaint(stand_in_install):
    venv, _wheel = stand_in_install
    version = venv.run(venv.script("glide-studio"), "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().startswith("glide-studio ")

    locations = _assert_installed_from_venv(venv)
    assert Path(locations["weights"]).resolve() == (venv.site_packages / "glide_studio" / "weights").resolve()

    _assert_result_png(_run_demo_inpaint(venv))


def test_wheel_with_the_shipped_demo_weights_runs_the_demo_model(tmp_path):
    source = _copy_sources(tmp_path / "src", with_real_weights=True)
    wheel = _build_wheel(source, tmp_path / "dist")
    venv = Venv(tmp_path / "venv", tmp_path / "work")
    venv.install(wheel)
    version = venv.run(venv.script("glide-studio"), "--version")
    assert version.returncode == 0, version.stderr
    _assert_installed_from_venv(venv)

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "glide_studio/weights/MODEL_CARD.md" in names
    shipped = [f"glide_studio/weights/{name}{suffix}" for name in DEMO_NAMES for suffix in (".safetensors", ".json")]
    assert all(name in names for name in shipped)
    _assert_result_png(_run_demo_inpaint(venv))
