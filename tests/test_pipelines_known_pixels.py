"""Inpaint and SDEdit leave every pixel outside the mask bit-identical, at the base size, at the
upsampler's size and on a larger picture through the edit box; SDEdit strength behaves."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import BASE_SIZE, UPSAMPLE_SIZE, picture, rect_mask, strokes, tiny_model_set

from glide_studio.pipelines import run
from glide_studio.pipelines.chains import start_from_image
from glide_studio.pipelines.editbox import EmptyMaskError
from glide_studio.pipelines.request import EditBox, Mode, Request
from glide_studio.pipelines.sdedit import composite_sketch
from glide_studio.pipelines.stages import image_to_tensor


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


def make_request(mode, size, upsample, **changes):
    image = picture(size, size, seed=1)
    fields = dict(mode=mode, prompt="a green triangle", image=image, steps=4, upsample_steps=3, seed=3,
                  strength=0.6, upsample_model="tiny-upsample-inpaint" if upsample else None,
                  mask=rect_mask(size, size, size // 4, size // 8, size * 3 // 4, size // 2))
    if mode is Mode.SDEDIT:
        fields["sketch"] = strokes(size, size, size // 4, size // 8, size // 2, size // 3)
    fields.update(changes)
    return Request(**fields)


def assert_unmasked_identical(final, image, mask):
    keep = mask == 0
    assert keep.any()
    assert np.array_equal(final[:, keep], np.broadcast_to(image[keep], final[:, keep].shape))
    assert not np.array_equal(final[:, ~keep], np.broadcast_to(image[~keep], final[:, ~keep].shape))


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.SDEDIT])
@pytest.mark.parametrize("upsample", [False, True], ids=["base-size", "upsample-size"])
def test_unmasked_pixels_bit_identical(models, mode, upsample):
    size = UPSAMPLE_SIZE if upsample else BASE_SIZE
    request = make_request(mode, size, upsample)
    steps = list(run(models, request))
    assert_unmasked_identical(steps[-1].final, request.image, request.mask)
    if upsample:
        base_last = [s for s in steps if s.stage == "base"][-1]
        assert base_last.x_t.shape[-1] == BASE_SIZE


@pytest.mark.parametrize("mode", [Mode.INPAINT, Mode.SDEDIT])
def test_edit_box_on_a_larger_picture_keeps_everything_outside_the_mask(models, mode):
    width, height = 150, 110
    image = picture(width, height, seed=5)
    mask = rect_mask(width, height, 60, 40, 90, 70)
    changes = dict(image=image, mask=mask, edit_box=EditBox(50, 30, 50, 50), upsample_model=None)
    if mode is Mode.SDEDIT:
        changes["sketch"] = strokes(width, height, 65, 45, 80, 60)
    final = list(run(models, make_request(mode, BASE_SIZE, False, **changes)))[-1].final
    assert final.shape == (1, height, width, 3)
    assert_unmasked_identical(final, image, mask)


def test_sdedit_strength_sets_the_starting_noise_and_stays_near_the_sketch(models):
    size = BASE_SIZE
    request = make_request(Mode.SDEDIT, size, False, steps=10, mask=rect_mask(size, size, 0, 0, size, size))
    composite = composite_sketch(request.image, request.sketch).astype(np.float32)
    distance = {}
    for strength in (0.2, 0.6, 1.0):
        steps = list(run(models, request.with_(strength=strength)))
        assert len(steps) == 10  # the steps asked for are the steps that run, whatever the strength
        # strength is a noise level: the chain starts at timestep strength * 999
        chain = start_from_image(models.base.config.noise_schedule, request.sampler, 10, strength,
                                 image_to_tensor(composite_sketch(request.image, request.sketch), "cpu"))
        diffusion = chain.diffusion
        assert int(diffusion.timestep_map[-1]) == round(strength * 999) and diffusion.num_steps == 10
        distance[strength] = np.abs(steps[-1].final[0].astype(np.float32) - composite).mean()
    assert distance[0.2] < distance[0.6] < distance[1.0]


def test_sdedit_without_mask_regenerates_where_the_strokes_are(models):
    size = BASE_SIZE
    request = make_request(Mode.SDEDIT, size, False, mask=None)
    final = list(run(models, request))[-1].final
    assert_unmasked_identical(final, request.image, request.sketch[..., 3])


def test_inpaint_with_an_empty_mask_is_a_clear_error(models):
    request = make_request(Mode.INPAINT, BASE_SIZE, False, mask=np.zeros((BASE_SIZE, BASE_SIZE), np.uint8))
    with pytest.raises(EmptyMaskError):
        list(run(models, request))
