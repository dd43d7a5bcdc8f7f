"""Precision: the reference's fp16 conversion rule, bf16 autocast accuracy, where the pipelines apply them,
and the text transformer running once per stage rather than once per step."""

from __future__ import annotations

import json

import pytest
import torch
from pipeline_helpers import UPSAMPLE_SIZE, picture, rect_mask, tiny_model_set

from glide_studio.models import build_model, load_weights
from glide_studio.models.precision import (
    Precision,
    PrecisionError,
    choose_precision,
    convert_unet_to_fp16,
    cpu_supports_bf16,
    prepare_model,
)
from glide_studio.pipelines import PipelineError, run
from glide_studio.pipelines.models import ModelSet
from glide_studio.pipelines.request import Mode, Request

UNETS = ["base", "upsample", "base-inpaint", "upsample-inpaint"]
BF16 = Precision(torch.device("cpu"), autocast_dtype=torch.bfloat16)


def _manifest(reference_dir, name):
    return json.loads((reference_dir / "manifests" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", UNETS)
def test_fp16_conversion_matches_the_reference_rule_exactly(reference_dir, name):
    manifest = _manifest(reference_dir, name)
    model = build_model({**manifest["options"], "use_fp16": False}, device="meta")
    convert_unet_to_fp16(model)
    dtypes = {key: tensor.dtype for key, tensor in model.state_dict().items()}
    rule = manifest["convert_to_fp16"]
    converted = {key for key, dtype in dtypes.items() if dtype == torch.float16}
    kept = {key for key, dtype in dtypes.items() if dtype == torch.float32}
    assert converted | kept == set(dtypes), "only float16 and float32 tensors are expected"
    assert converted == set(rule["converted_keys"])
    assert kept == set(rule["kept_float32_keys"])
    assert len(converted) == rule["num_converted"]
    assert model.dtype == torch.float16


def test_prepare_model_leaves_clip_and_fp32_untouched(reference_dir):
    model = build_model(_manifest(reference_dir, "base")["options"], device="meta").train()
    prepare_model(model, Precision(torch.device("meta")))
    assert not model.training
    assert {tensor.dtype for tensor in model.state_dict().values()} == {torch.float32}


def _tiny(reference_dir, name):
    options = json.loads((reference_dir / f"{name}.options.json").read_text())["options"]
    model = build_model(options)
    load_weights(model, reference_dir / f"{name}.pt")
    cases = torch.load(reference_dir / f"{name}.cases.pt", weights_only=True)
    kwargs = {key: cases[key] for key in ("tokens", "mask", "inpaint_image", "inpaint_mask") if key in cases}
    return model, cases, kwargs


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_is_close_to_fp32_on_the_tiny_reference(reference_dir):
    model, cases, kwargs = _tiny(reference_dir, "tiny-base-inpaint")
    with torch.no_grad():
        exact = model(cases["x_t"], cases["timesteps"], **kwargs)
        with BF16.autocast():
            low = model(cases["x_t"], cases["timesteps"], **kwargs)
    torch.testing.assert_close(exact, cases["output"], rtol=0, atol=1e-5)
    assert low.dtype == torch.bfloat16, "autocast did not reach the network"
    deviation = (low.float() - exact).abs()
    scale = exact.std().item()
    # bf16 keeps 8 significant bits: one rounding is up to 2^-9 relative, and every conv, matmul and attention
    # input of the ~20 layers is rounded once. Measured here: mean 0.010 and max 0.08 of the output's std;
    # the bounds leave a 3x margin, and an fp16/fp32 mix-up or a wrongly cast norm is far outside them.
    assert deviation.mean().item() < 0.03 * scale
    assert deviation.max().item() < 0.25 * scale
    assert deviation.max().item() > 0, "bf16 gave bit-identical results: autocast cannot have been active"


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")
def test_stored_bf16_convolutions_give_the_same_results_as_autocast_alone(reference_dir):
    model, cases, kwargs = _tiny(reference_dir, "tiny-base-inpaint")
    with torch.no_grad(), BF16.autocast():
        autocast_only = model(cases["x_t"], cases["timesteps"], **kwargs)
        prepare_model(model, choose_precision("cpu", "bf16"))
        stored = model(cases["x_t"], cases["timesteps"], **kwargs)
    torch.testing.assert_close(stored, autocast_only, rtol=0, atol=0)
    dtypes = {key: tensor.dtype for key, tensor in model.state_dict().items()}
    low = {key for key, dtype in dtypes.items() if dtype == torch.bfloat16}
    assert low and all(key.startswith(("input_blocks.", "middle_block.", "output_blocks.")) for key in low)
    assert dtypes["transformer_proj.weight"] == dtypes["token_embedding.weight"] == torch.float32
    assert dtypes["input_blocks.1.0.emb_layers.1.weight"] == dtypes["out.2.weight"] == torch.float32


def test_choose_precision_refuses_impossible_combinations(monkeypatch):
    with pytest.raises(PrecisionError, match="only supported on CUDA"):
        choose_precision("cpu", "fp16")
    with pytest.raises(PrecisionError, match="unknown precision mode"):
        choose_precision("cpu", "fp8")
    with pytest.raises(PrecisionError, match="unknown device"):
        choose_precision("gpu0", "auto")
    with pytest.raises(PrecisionError, match="unsupported device"):
        choose_precision("meta", "fp32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PrecisionError, match="no CUDA device"):
        choose_precision("cuda", "auto")
    with pytest.raises(PrecisionError, match="no CUDA device"):
        choose_precision("cuda:0", "fp32")


def test_choose_precision_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_precision("auto", "fp32") == Precision(torch.device("cpu"))
    assert choose_precision("cpu", "bf16").autocast_dtype == torch.bfloat16
    monkeypatch.setattr("glide_studio.models.precision.cpu_supports_bf16", lambda: True)
    assert choose_precision().name == "bf16"
    monkeypatch.setattr("glide_studio.models.precision.cpu_supports_bf16", lambda: False)
    assert choose_precision().name == "fp32"


# -- the pipelines -----------------------------------------------------------------------------------

def _inpaint_request(**changes):
    w = h = UPSAMPLE_SIZE
    fields = dict(mode=Mode.INPAINT, prompt="a red circle", image=picture(w, h), mask=rect_mask(w, h, 8, 8, 40, 40),
                  steps=3, upsample_steps=2, seed=3, batch=2, guidance_scale=3.0)
    fields.update(changes)
    return Request(**fields)


@pytest.fixture(scope="module")
def tiny_models(reference_dir):
    return tiny_model_set(reference_dir)


def _count_calls(module, counter, key):
    def hook(_module, _inputs, _output):
        counter[key] = counter.get(key, 0) + 1

    return module.register_forward_hook(hook)


@pytest.mark.parametrize("sampler", ["dpm++2m", "ancestral"])
def test_text_transformer_runs_once_per_stage(tiny_models, sampler):
    calls: dict[str, int] = {}
    hooks = [_count_calls(tiny_models.base.transformer, calls, "base transformer"),
             _count_calls(tiny_models.upsample.transformer, calls, "upsample transformer"),
             _count_calls(tiny_models.base, calls, "base unet"),
             _count_calls(tiny_models.upsample, calls, "upsample unet")]
    try:
        steps = list(run(tiny_models, _inpaint_request(sampler=sampler)))
    finally:
        for hook in hooks:
            hook.remove()
    assert steps[-1].final is not None
    assert calls["base transformer"] == 1
    assert calls["upsample transformer"] == 1
    assert calls["base unet"] >= 3 and calls["upsample unet"] >= 2  # the UNets did run every step


def _first_conv_dtypes(models, precision):
    seen: list[torch.dtype] = []

    def hook(_module, _inputs, output):
        seen.append(output.dtype)

    model_set = ModelSet(base=models.base, upsample=models.upsample, base_size=models.base_size,
                         upsample_size=models.upsample_size, precision=precision)
    handles = [m.input_blocks[0][0].register_forward_hook(hook) for m in (models.base, models.upsample)]
    try:
        steps = list(run(model_set, _inpaint_request()))
    finally:
        for handle in handles:
            handle.remove()
    return set(seen), steps


def test_pipelines_run_the_networks_under_the_chosen_precision(tiny_models):
    dtypes, exact = _first_conv_dtypes(tiny_models, None)
    assert dtypes == {torch.float32}
    dtypes, low = _first_conv_dtypes(tiny_models, BF16)
    assert dtypes == {torch.bfloat16}
    # Samples stay float32 whatever the network ran in, and the known pixels are still copied exactly.
    assert all(step.x_t.dtype == torch.float32 and step.pred_x0.dtype == torch.float32 for step in low)
    outside = rect_mask(UPSAMPLE_SIZE, UPSAMPLE_SIZE, 8, 8, 40, 40) == 0
    assert (low[-1].final[:, outside] == _inpaint_request().image[outside]).all()
    assert (low[-1].final[:, outside] == exact[-1].final[:, outside]).all()


def test_prepared_model_set_and_mismatched_devices(tiny_models):
    prepared = ModelSet.prepared(BF16, tiny_models.base, tiny_models.upsample, base_size=tiny_models.base_size,
                                 upsample_size=tiny_models.upsample_size)
    assert prepared.precision is BF16 and prepared.device == torch.device("cpu")
    assert ModelSet(base=tiny_models.base).precision.name == "fp32"
    with pytest.raises(PipelineError, match="precision is for"):
        ModelSet(base=tiny_models.base, precision=Precision(torch.device("meta")))
