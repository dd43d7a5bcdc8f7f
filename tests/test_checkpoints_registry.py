"""The registry: official facts match OpenAI's manifests; demo weights are found, or missing clearly."""

from __future__ import annotations

import json

import pytest

from glide_studio.checkpoints import (
    DEMO_NAMES,
    OFFICIAL_NAMES,
    REGISTRY,
    CheckpointFormatError,
    MissingWeightsError,
    UnknownCheckpointError,
    demo_options,
    demo_paths,
    demo_weights_dir,
    get_spec,
)
from glide_studio.checkpoints import registry as registry_module


def test_six_official_checkpoints_and_four_demos():
    assert OFFICIAL_NAMES == (
        "base", "upsample", "base-inpaint", "upsample-inpaint", "clip-image-enc", "clip-text-enc"
    )
    assert DEMO_NAMES == ("demo-base-inpaint", "demo-upsample-inpaint", "demo-clip-image-enc", "demo-clip-text-enc")
    kinds = {name: REGISTRY[name].kind for name in REGISTRY}
    for family in ("", "demo-"):
        assert kinds[f"{family}clip-image-enc"] == "clip-image" and kinds[f"{family}clip-text-enc"] == "clip-text"
    unets = ("base", "upsample", "base-inpaint", "upsample-inpaint", "demo-base-inpaint", "demo-upsample-inpaint")
    assert {kinds[n] for n in unets} == {"unet"}
    assert get_spec("base-inpaint").url.endswith("/diffusion/dec-2021/base_inpaint.pt")


def test_official_facts_match_the_reference_manifests(reference_dir):
    for name in OFFICIAL_NAMES:
        manifest = json.loads((reference_dir / "manifests" / f"{name}.json").read_text())
        spec = get_spec(name)
        assert spec.url == manifest["url"]
        assert spec.num_params == manifest["num_params"]
        expected = dict(manifest["options"])
        if "use_fp16" in expected:
            expected["use_fp16"] = False  # precision is applied when building, not by the registry
        assert spec.options_dict() == expected, name
        if "constructor_args" in manifest:
            assert dict(spec.extra["constructor_args"]) == manifest["constructor_args"]
        assert abs(spec.approx_size - 4 * manifest["num_params"]) < 5_000_000


def test_options_are_fresh_copies_and_registry_is_read_only():
    options = get_spec("base").options_dict()
    options["image_size"] = 1
    assert get_spec("base").options_dict()["image_size"] == 64
    with pytest.raises(TypeError):
        get_spec("base").options["image_size"] = 1
    with pytest.raises(TypeError):
        REGISTRY["x"] = None


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownCheckpointError, match="unknown checkpoint 'bse'.*base-inpaint"):
        get_spec("bse")


def test_missing_demo_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("GLIDE_STUDIO_DEMO_WEIGHTS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(registry_module, "_package_weights_dir", lambda: None)
    monkeypatch.setattr(registry_module, "_repo_weights_dir", lambda: tmp_path / "repo-weights")
    with pytest.raises(MissingWeightsError, match="demo-base-inpaint.safetensors.*searched"):
        demo_paths("demo-base-inpaint")
    with pytest.raises(MissingWeightsError):
        get_spec("demo-upsample-inpaint").options_dict()


def _write_demo(folder, name, options):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.safetensors").write_bytes(b"placeholder")
    (folder / f"{name}.json").write_text(json.dumps({"options": options, "steps_trained": 10}))


def test_demo_lookup_prefers_package_data_then_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("GLIDE_STUDIO_DEMO_WEIGHTS", raising=False)
    package = tmp_path / "site-packages" / "glide_studio" / "weights"
    repo = tmp_path / "checkout" / "weights"
    monkeypatch.setattr(registry_module, "_repo_weights_dir", lambda: repo)
    monkeypatch.setattr(
        registry_module, "_package_weights_dir", lambda: package if package.is_dir() else None
    )
    _write_demo(repo, "demo-base-inpaint", {"image_size": 64, "inpaint": True})
    assert demo_weights_dir() == repo
    assert demo_options("demo-base-inpaint") == {"image_size": 64, "inpaint": True}
    _write_demo(package, "demo-base-inpaint", {"image_size": 32, "inpaint": True})
    assert demo_weights_dir() == package
    assert demo_paths("demo-base-inpaint")[0] == package / "demo-base-inpaint.safetensors"
    assert get_spec("demo-base-inpaint").options_dict()["image_size"] == 32


def test_default_lookup_points_at_the_checkout_weights_folder(monkeypatch):
    monkeypatch.delenv("GLIDE_STUDIO_DEMO_WEIGHTS", raising=False)
    candidates = registry_module.demo_weights_candidates()
    assert candidates[-1].name == "weights"
    assert (candidates[-1].parent / "glide_studio" / "checkpoints" / "registry.py").is_file()


def test_demo_json_without_options_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GLIDE_STUDIO_DEMO_WEIGHTS", str(tmp_path))
    (tmp_path / "demo-base-inpaint.safetensors").write_bytes(b"x")
    (tmp_path / "demo-base-inpaint.json").write_text("{not json")
    with pytest.raises(CheckpointFormatError, match="cannot read demo model metadata"):
        demo_options("demo-base-inpaint")
    (tmp_path / "demo-base-inpaint.json").write_text(json.dumps({"weights": 1}))
    with pytest.raises(CheckpointFormatError, match="no 'options'"):
        demo_options("demo-base-inpaint")
