"""No visible seam: the paste back harmonises a fill's tone with the picture around the mask, leaves a new object's
colour alone, and never touches a pixel outside the mask; the mask edge's grow and feather settings do what they
say in a real run, and the upsampler regenerates past the mask's edge."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_helpers import UPSAMPLE_SIZE, picture, rect_mask, tiny_model_set

from glide_studio.pipelines import run
from glide_studio.pipelines.editbox import paste_back, prepare
from glide_studio.pipelines.inpaint import upsampler_input
from glide_studio.pipelines.request import Mode, Request
from glide_studio.pipelines.seams import harmonise, membrane

GRAY = np.array([128.0, 128.0, 128.0], np.float32)


def flat(side: int, colour=GRAY) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (side, side, 3)).copy()


def box(side: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    inside = np.zeros((side, side), bool)
    inside[y0:y1, x0:x1] = True
    return inside


def test_a_fill_a_few_levels_off_is_brought_to_the_picture_s_tone():
    known = flat(96)
    inside = box(96, 20, 24, 70, 80)
    offset = np.array([6.0, -4.0, 9.0], np.float32)
    grain = np.random.default_rng(0).normal(0, 1.0, (96, 96, 3)).astype(np.float32)
    fill = known + offset + grain
    out = harmonise(fill, known, inside, band_px=2)
    assert np.abs((fill - known)[inside].mean(axis=0) - offset).max() < 0.1  # the step that showed
    assert np.abs((out - known)[inside].mean(axis=0)).max() < 0.5
    # The offset goes, the fill's own detail stays.
    assert np.abs((out - known - grain)[inside]).mean() < 0.5
    assert np.array_equal(out[~inside], fill[~inside])


def test_a_textured_picture_keeps_its_texture_and_loses_most_of_the_offset():
    """The bands either side of the edge are a few pixels apart, so on a slope of up to 1.2 levels per pixel
    their means differ by a little even where the fill is right: about one level is left of seven."""
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    known = GRAY + (10 * np.sin(xx / 9) + 6 * np.cos(yy / 13))[..., None]
    inside = box(96, 30, 10, 80, 60)
    fill = known - 7.0
    out = harmonise(fill, known, inside, band_px=2)
    assert np.abs(out - known)[inside].mean() < 1.0
    flat_known = np.full_like(known, 128.0)
    assert np.abs(harmonise(flat_known - 7.0, flat_known, inside, band_px=2) - flat_known)[inside].mean() < 0.1


def test_two_backgrounds_each_get_their_own_correction():
    """A fill that is off one way over one background and the other way over the second (the mask straddles
    their border) is pulled toward each along its own stretch of the edge."""
    known = flat(96)
    known[:, 48:] = (150, 120, 100)
    inside = box(96, 20, 20, 76, 76)
    fill = known.copy()
    fill[:, :48] += 8
    fill[:, 48:] -= 8
    out = harmonise(fill, known, inside, band_px=2)
    left, right = inside.copy(), inside.copy()
    left[:, 34:] = False  # away from the border between the backgrounds, where the membrane must bend
    right[:, :62] = False
    assert np.abs(out - known)[left].mean() < 2.0
    assert np.abs(out - known)[right].mean() < 2.0
    assert np.abs(fill - known)[inside].mean() == pytest.approx(8.0)


def stripes(side: int, shift_px: float) -> np.ndarray:
    """Two tones 24 levels apart in diagonal stripes with soft borders (a 40 px period), as the shapes world draws
    them; `shift_px` moves the borders."""
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    t = (xx * np.cos(0.6) + yy * np.sin(0.6) + shift_px) / 40.0
    return np.array([120.0, 140.0, 90.0], np.float32) + (12 * np.tanh(3 * np.sin(2 * np.pi * t)))[..., None]


@pytest.mark.parametrize("shift_px", [2.0, 3.0, 4.0])
def test_a_fill_whose_stripe_borders_sit_a_few_pixels_off_loses_its_offset_and_gains_no_other(shift_px):
    """Where a border of the fill's stripes meets the mask's edge a few pixels from the picture's, the two sides
    show different tones over a short stretch of the edge: those samples are a misplaced border, not a drift,
    and must not pull the fill toward the other tone."""
    known = stripes(128, 0.0)
    inside = box(128, 24, 30, 104, 110)
    drawn = stripes(128, shift_px) + np.random.default_rng(0).normal(0, 1.0, (128, 128, 3)).astype(np.float32)
    out = harmonise(drawn + 4.0, known, inside, band_px=2)
    assert np.abs((out - drawn)[inside].mean(axis=0)).max() < 0.2  # the offset is gone, no other one came
    assert np.abs(out - known)[inside].mean() < np.abs(drawn - known)[inside].mean() + 0.05


def test_a_new_object_drawn_up_to_the_mask_s_edge_keeps_its_colour():
    known = flat(96)
    inside = box(96, 20, 20, 76, 76)
    fill = known + 3.0
    red = np.array([215.0, 35.0, 35.0], np.float32)
    obj = box(96, 20, 30, 50, 60)  # its top side lies on the mask's top edge
    fill[obj] = red
    out = harmonise(fill, known, inside, band_px=2)
    assert np.abs(out[obj] - red).max(axis=-1).mean() < 3.5  # at most the background's own small shift
    background = inside & ~obj
    assert np.abs(out - known)[background].mean() < 1.0


def test_a_box_many_times_the_model_s_size_is_harmonised_at_the_model_s_resolution():
    """A 512 px box from a 128 px result (band 8 px): the offset is found on the result's grid and scaled up."""
    known = flat(512)
    inside = box(512, 100, 60, 400, 460)
    grain = np.kron(np.random.default_rng(1).normal(0, 1.0, (128, 128, 3)), np.ones((4, 4, 1))).astype(np.float32)
    fill = known + np.array([5.0, -6.0, 4.0], np.float32) + grain
    out = harmonise(fill, known, inside, band_px=8)
    assert np.abs((out - known)[inside].mean(axis=0)).max() < 0.5
    assert np.abs((out - known - grain)[inside]).mean() < 0.6
    assert np.array_equal(out[~inside], fill[~inside])


def test_the_membrane_passes_through_its_samples_and_is_smooth_between():
    values = np.zeros((40, 40, 1), np.float32)
    weights = np.zeros((40, 40), np.float32)
    values[:, 0], values[:, -1] = 0.0, 10.0
    weights[:, 0] = weights[:, -1] = 1.0
    field = membrane(values, weights)[..., 0]
    assert np.allclose(field[:, 0], 0.0) and np.allclose(field[:, -1], 10.0)
    row = field[20]
    assert np.all(np.diff(row) >= -1e-3)  # from one side to the other without overshoot
    assert 3.0 < row[20] < 7.0


def test_harmonised_paste_back_touches_nothing_outside_the_mask():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
    mask = np.zeros((120, 150), np.uint8)
    mask[30:80, 40:110] = 255
    mask[50:60, 20:40] = 255
    boxed = prepare(image, mask, None, None, 64)
    result = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = paste_back(image, result, boxed, mask, harmonise=True)
    assert np.array_equal(out[mask == 0], image[mask == 0])
    assert not np.array_equal(out[mask != 0], image[mask != 0])


def test_harmonised_paste_back_removes_a_flat_fill_s_step_at_the_edge():
    image = np.full((64, 64, 3), 128, np.uint8)
    mask = rect_mask(64, 64, 16, 16, 48, 48)
    boxed = prepare(image, mask, None, None, 64)
    result = np.full((64, 64, 3), 136, np.uint8)
    plain = paste_back(image, result, boxed, mask)
    harmonised = paste_back(image, result, boxed, mask, harmonise=True)
    assert np.abs(plain[24:40, 24:40].astype(int) - 128).min() == 8
    assert np.abs(harmonised[mask != 0].astype(int) - 128).max() <= 1


@pytest.fixture(scope="module")
def models(reference_dir):
    return tiny_model_set(reference_dir)


def inpaint_request(**changes) -> Request:
    side = UPSAMPLE_SIZE
    fields = dict(mode=Mode.INPAINT, prompt="a red circle", image=picture(side, side, seed=2),
                  mask=rect_mask(side, side, 20, 20, 44, 44), steps=3, upsample_steps=2, seed=5,
                  upsample_model="tiny-upsample-inpaint")
    fields.update(changes)
    return Request(**fields)


def final_of(models, request) -> np.ndarray:
    return list(run(models, request))[-1].final[0]


def test_grow_regenerates_a_ring_around_the_mask_and_nothing_beyond(models):
    request = inpaint_request(mask_grow=3)
    out = final_of(models, request)
    image = request.image
    changed = np.any(out != image, axis=-1)
    ring = rect_mask(64, 64, 17, 17, 47, 47) != 0
    assert not changed[~ring].any()
    assert changed[ring & (request.mask == 0)].mean() > 0.5  # the grown ring is regenerated too
    unchanged_default = final_of(models, inpaint_request())
    assert np.array_equal(unchanged_default[request.mask == 0], image[request.mask == 0])


def test_feather_widens_the_ramp_inside_the_mask_only(models):
    sharp = final_of(models, inpaint_request())
    soft = final_of(models, inpaint_request(mask_feather=8))
    image, mask = inpaint_request().image, inpaint_request().mask
    assert np.array_equal(soft[mask == 0], image[mask == 0])
    # Five pixels inside the mask the default ramp is done; an 8 px ramp still mixes in the picture there.
    depth5 = (slice(25, 39), 25)
    assert not np.array_equal(soft[depth5], sharp[depth5])
    centre = (slice(30, 34), slice(30, 34))
    assert np.array_equal(soft[centre], sharp[centre])


def test_a_shrink_that_leaves_nothing_is_a_clear_error(models):
    from glide_studio.pipelines.editbox import EmptyMaskError

    with pytest.raises(EmptyMaskError, match="shrinking the mask by 20 px"):
        list(run(models, inpaint_request(mask_grow=-20)))


def test_the_upsampler_regenerates_one_base_pixel_past_the_mask(models):
    request = inpaint_request()
    boxed = upsampler_input(models, request, request.mask)
    grow = UPSAMPLE_SIZE // models.base_size
    exact = request.mask != 0
    assert np.array_equal(boxed.mask[exact], np.ones(exact.sum(), bool))
    expected = rect_mask(64, 64, 20 - grow, 20 - grow, 44 + grow, 44 + grow) != 0
    # An octagonal growth: the square's corners are cut.
    assert not boxed.mask[~expected].any()
    assert boxed.mask[20 - grow, 30] and boxed.mask[30, 44 + grow - 1] and not boxed.mask[20 - grow, 20 - grow]
