"""The edit box: squaring, cropping, resizing, and a paste back that leaves the rest bit-identical."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.pipelines.editbox import (
    BoxOutsidePictureError,
    EditBoxError,
    EmptyMaskError,
    default_box,
    default_feather_px,
    feather_weights,
    paste_back,
    prepare,
)
from glide_studio.pipelines.request import EditBox


@pytest.fixture
def picture() -> np.ndarray:
    return np.random.default_rng(0).integers(20, 236, size=(700, 1000, 3), dtype=np.uint8)


@pytest.fixture
def mask() -> np.ndarray:
    painted = np.zeros((700, 1000), dtype=np.uint8)
    painted[300:420, 500:650] = 255
    painted[350:380, 740:800] = 255  # reaches outside the box used below
    return painted


def test_paste_back_changes_only_the_mask_inside_the_box(picture, mask):
    box = EditBox(450, 250, 300, 200)  # not square
    boxed = prepare(picture, mask, None, box, 64, require_mask=True)
    assert boxed.square == EditBox(450, 200, 300, 300)
    result = np.zeros((256, 256, 3), dtype=np.uint8)  # a fake upsampled model result

    out = paste_back(picture, result, boxed, mask, feather_px=6)

    in_box = np.zeros(mask.shape, dtype=bool)
    in_box[250:450, 450:750] = True
    untouched = (mask == 0) | ~in_box
    assert np.array_equal(out[untouched], picture[untouched])
    assert out.dtype == np.uint8 and out.shape == picture.shape
    # Deep inside the mask the result replaces the picture; on the mask's edge it is a mix.
    assert np.array_equal(out[320:400, 520:630], np.zeros((80, 110, 3), dtype=np.uint8))
    edge = out[300, 520:630].astype(int)
    original = picture[300, 520:630].astype(int)
    assert np.all(edge > 0) and np.all(edge < original)
    # The painted stroke outside the box is left alone.
    assert np.array_equal(out[350:380, 750:800], picture[350:380, 750:800])
    assert not np.shares_memory(out, picture)


def test_soft_edge_ramps_between_zero_and_one(picture, mask):
    flat = np.full_like(picture, 200)
    boxed = prepare(flat, mask, None, EditBox(450, 250, 300, 200), 256)
    out = paste_back(flat, np.zeros((256, 256, 3), np.uint8), boxed, mask, feather_px=8)
    row = out[360, 495:530, 0].astype(int)  # across the left edge of the painted region
    assert row[0] == 200 and row[-1] == 0
    assert np.all(np.diff(row) <= 0)
    assert len(set(row[(row > 0) & (row < 200)])) >= 5


def test_identity_result_gives_back_the_picture(picture, mask):
    box = EditBox(480, 260, 256, 256)
    boxed = prepare(picture, mask, None, box, 256)
    assert np.array_equal(boxed.image, picture[260:516, 480:736])
    out = paste_back(picture, boxed.image, boxed, mask, feather_px=8)
    assert np.array_equal(out, picture)


def test_downscaled_round_trip_stays_aligned():
    yy, xx = np.mgrid[0:700, 0:1000]
    smooth = np.stack([xx * 255 // 999, yy * 255 // 699, (xx + yy) * 255 // 1698], -1).astype(np.uint8)
    everything = np.ones((700, 1000), dtype=bool)
    boxed = prepare(smooth, everything, None, EditBox(100, 50, 600, 400), 256)
    out = paste_back(smooth, boxed.image, boxed, everything, feather_px=0)
    inner = (slice(60, 440), slice(110, 690))
    error = np.abs(out[inner].astype(int) - smooth[inner].astype(int))
    assert error.mean() < 1.0 and error.max() <= 3


def test_square_is_shifted_inside_the_picture(picture):
    boxed = prepare(picture, None, None, EditBox(900, 600, 100, 60), 64)
    assert boxed.square == EditBox(900, 580, 100, 100)  # centred on the box
    boxed = prepare(picture, None, None, EditBox(900, 640, 100, 60), 64)
    assert boxed.square == EditBox(900, 600, 100, 100)  # centred would cross the bottom edge
    boxed = prepare(picture, None, None, EditBox(950, 650, 200, 200), 64)  # clipped to 50x50
    assert boxed.box == EditBox(950, 650, 50, 50)
    assert boxed.square == EditBox(950, 650, 50, 50)


def test_square_larger_than_picture_is_padded_with_edge_pixels(picture):
    boxed = prepare(picture, np.ones((700, 1000), bool), None, EditBox(0, 100, 1000, 500), 100)
    assert boxed.square == EditBox(0, -150, 1000, 1000)
    assert boxed.image.shape == (100, 100, 3)
    # 150 px of padding above the picture is 15 model pixels of repeated top row.
    assert np.array_equal(boxed.image[0], boxed.image[14])
    assert not boxed.mask[:15].any() and boxed.mask[16:84].all() and not boxed.mask[86:].any()


def test_model_size_mask_counts_any_coverage(picture):
    painted = np.zeros((700, 1000), dtype=bool)
    painted[100, 100] = True  # one picture pixel
    boxed = prepare(picture, painted, None, EditBox(0, 0, 640, 640), 64)
    assert boxed.mask.dtype == bool and boxed.mask.sum() >= 1
    assert boxed.mask[10, 10]


def test_sketch_is_resized_with_its_alpha(picture):
    sketch = np.zeros((700, 1000, 4), dtype=np.uint8)
    sketch[100:300, 100:300] = (255, 0, 0, 255)
    boxed = prepare(picture, None, sketch, EditBox(0, 0, 400, 400), 64)
    assert boxed.sketch.shape == (64, 64, 4)
    assert tuple(boxed.sketch[32, 32]) == (255, 0, 0, 255)
    assert boxed.sketch[60, 60, 3] == 0


def test_huge_picture_is_handled_through_the_crop():
    row = (np.arange(20000, dtype=np.uint32) % 251).astype(np.uint8)
    # 20000 x 20000 x 3 without the 1.2 GB: every row is the same view.
    huge = np.broadcast_to(row[None, :, None], (20000, 20000, 3))
    boxed = prepare(huge, None, None, EditBox(15000, 12000, 64, 64), 64)
    assert np.array_equal(boxed.image, np.ascontiguousarray(huge[12000:12064, 15000:15064]))

    wide = np.zeros((400, 20000, 3), dtype=np.uint8)
    painted = np.zeros((400, 20000), dtype=bool)
    painted[150:250, 17000:17100] = True
    box = default_box((20000, 400), painted, model_size=256)
    assert box.width == box.height and box.x <= 17000 and box.x + box.width >= 17100
    boxed = prepare(wide, painted, None, box, 256, require_mask=True)
    paste_back(wide, np.full((256, 256, 3), 255, np.uint8), boxed, painted, feather_px=4, inplace=True)
    assert wide[200, 17050, 0] == 255 and wide[:, :16000].max() == 0


def test_default_box_around_the_mask(mask):
    box = default_box((1000, 700), mask, model_size=256)
    assert box.width == box.height >= 256
    assert box.x <= 500 and box.x + box.width >= 800 and box.y <= 300 and box.y + box.height >= 420
    assert box.x >= 0 and box.y >= 0 and box.x + box.width <= 1000 and box.y + box.height <= 700
    small = np.zeros((150, 200), dtype=bool)
    small[50:60, 20:30] = True
    assert default_box((200, 150), small, model_size=256) == EditBox(0, 0, 200, 150)
    assert default_box((200, 150), None) == EditBox(0, 0, 200, 150)


def test_bad_boxes_and_masks_are_refused(picture, mask):
    with pytest.raises(BoxOutsidePictureError, match="outside the 1000x700 picture"):
        prepare(picture, mask, None, EditBox(1200, 0, 100, 100), 64)
    with pytest.raises(EditBoxError, match="positive size"):
        prepare(picture, mask, None, EditBox(0, 0, 0, 100), 64)
    with pytest.raises(EmptyMaskError):
        prepare(picture, np.zeros((700, 1000), bool), None, None, 64, require_mask=True)
    with pytest.raises(EmptyMaskError, match="inside the edit box"):
        prepare(picture, mask, None, EditBox(0, 0, 100, 100), 64, require_mask=True)
    with pytest.raises(EmptyMaskError):
        default_box((1000, 700), np.zeros((700, 1000), bool))
    with pytest.raises(EditBoxError, match="shape"):
        prepare(picture, np.zeros((10, 10), bool), None, None, 64)
    with pytest.raises(EditBoxError, match="HxWx3"):
        prepare(picture[..., 0], None, None, None, 64)
    boxed = prepare(picture, mask, None, EditBox(450, 250, 300, 200), 64)
    with pytest.raises(EditBoxError, match="square"):
        paste_back(picture, np.zeros((64, 32, 3), np.uint8), boxed, mask)
    with pytest.raises(EditBoxError, match="prepared for"):
        paste_back(picture[:500], np.zeros((64, 64, 3), np.uint8), boxed, None)


def test_feather_weights_respect_open_edges():
    inside = np.ones((20, 20), dtype=bool)
    inside[:, 15:] = False
    closed = feather_weights(inside, 4, (False, False, False, False))
    assert closed[:, 15:].max() == 0 and closed[10, 7] == 1 and 0 < closed[10, 0] < 1
    open_left = feather_weights(inside, 4, (True, False, False, False))
    assert open_left[10, 0] == 1 and 0 < open_left[10, 14] < 1
    assert np.array_equal(feather_weights(inside, 0, (False,) * 4), inside.astype(np.float32))


def test_large_downscale_matches_a_direct_lanczos_resize():
    from PIL import Image, ImageFilter

    noise = np.random.default_rng(5).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(12)))
    sketch = np.zeros((1600, 1600, 4), dtype=np.uint8)
    sketch[:810] = (255, 0, 0, 255)  # the stroke's edge falls inside one model pixel
    boxed = prepare(smooth, None, sketch, None, 64)  # 25x: shrunk by 12x12 blocks first
    direct = np.asarray(Image.fromarray(smooth).resize((64, 64), Image.Resampling.LANCZOS))
    assert np.abs(boxed.image.astype(int) - direct.astype(int)).max() <= 2
    edge = boxed.sketch[32]
    assert 0 < edge[0, 3] < 255 and tuple(edge[0, :3]) == (255, 0, 0)  # no dark fringe from alpha


@pytest.mark.parametrize("picture_side,result_side,feather", [(64, 64, 2), (64, 256, 1), (256, 256, 2),
                                                              (256, 64, 8), (1024, 256, 8)])
def test_the_default_ramp_is_two_of_the_results_pixels_deep(picture_side, result_side, feather):
    painted = np.zeros((picture_side, picture_side), np.uint8)
    painted[picture_side // 4:picture_side // 2, picture_side // 4:picture_side // 2] = 255
    boxed = prepare(np.zeros((picture_side, picture_side, 3), np.uint8), painted, None, None, result_side)
    assert default_feather_px(boxed, result_side) == feather


def test_a_small_edit_on_a_model_size_picture_keeps_its_new_content_at_full_strength():
    """A 20 px object regenerated on a 64 px picture: past the two-pixel ramp, the result is what the model
    drew, not a blend with what the user painted over."""
    white = np.full((64, 64, 3), 255, np.uint8)
    painted = np.zeros((64, 64), np.uint8)
    painted[20:40, 22:42] = 255
    boxed = prepare(white, painted, None, None, 64)
    out = paste_back(white, np.zeros((64, 64, 3), np.uint8), boxed, painted)
    assert np.all(out[22:38, 24:40] == 0)
    assert np.all(out[20, 22:42] > 0) and np.array_equal(out[painted == 0], white[painted == 0])


def test_grow_mask_grows_and_shrinks_by_an_octagonal_distance():
    from glide_studio.pipelines.editbox import grow_mask

    dot = np.zeros((41, 41), np.uint8)
    dot[20, 20] = 1
    grown = grow_mask(dot, 6)
    rows, cols = np.nonzero(grown)
    assert rows.min() == 14 and rows.max() == 26 and cols.min() == 14 and cols.max() == 26
    assert not grown[14, 14] and grown[20, 14] and grown[17, 17]  # the corners are cut: round enough
    assert np.array_equal(grow_mask(grown, -6), dot.astype(bool))
    assert grow_mask(dot, 0) is dot
    # Only the mask's neighbourhood is worked on, even next to the picture's edge.
    edge = np.zeros((30, 3000), bool)
    edge[0, 2999] = True
    expected = np.zeros_like(edge)
    expected[:3, 2997:] = True
    expected[2, 2997] = False
    assert np.array_equal(grow_mask(edge, 2), expected)


def test_the_default_box_holds_the_grown_mask(mask):
    from glide_studio.pipelines.editbox import with_default_box
    from glide_studio.pipelines.request import Mode, Request

    image = np.zeros((700, 1000, 3), np.uint8)
    painted = np.zeros((700, 1000), np.uint8)
    painted[300:420, 500:650] = 255
    request = Request(mode=Mode.INPAINT, image=image, mask=painted, upsample_model=None, mask_grow=120)
    box = with_default_box(request).edit_box
    assert box.x <= 380 and box.y <= 180 and box.x + box.width >= 770 and box.y + box.height >= 540


def test_the_model_mask_can_be_grown_while_the_paste_keeps_the_painted_one(picture):
    painted = np.zeros((256, 256), np.uint8)
    painted[64:128, 64:128] = 255
    exact = prepare(picture[:256, :256], painted, None, None, 256)
    grown = prepare(picture[:256, :256], painted, None, None, 256, grow_model_px=4)
    assert exact.mask.sum() == 64 * 64
    assert grown.mask[60:132, 64:128].all() and grown.mask[64:128, 60:132].all() and not grown.mask[58, 90]
    out = paste_back(picture[:256, :256], np.zeros((256, 256, 3), np.uint8), grown, painted)
    assert np.array_equal(out[painted == 0], picture[:256, :256][painted == 0])


def test_a_paused_runs_preview_is_pasted_through_the_grown_mask():
    from glide_studio.app.stills import paused_pictures
    from glide_studio.pipelines.request import Mode, Request

    image = np.full((256, 256, 3), 40, np.uint8)
    painted = np.zeros((256, 256), np.uint8)
    painted[96:160, 96:160] = 255
    preview = np.full((1, 256, 256, 3), 200, np.uint8)
    box = EditBox(0, 0, 256, 256)
    exact = paused_pictures(Request(mode=Mode.INPAINT, image=image, mask=painted, edit_box=box), preview)[0]
    grown = paused_pictures(Request(mode=Mode.INPAINT, image=image, mask=painted, edit_box=box, mask_grow=12),
                            preview)[0]
    ring = (slice(86, 94), slice(120, 136))  # outside the painted mask, inside it grown by 12 px
    assert (exact[ring] == 40).all() and (grown[ring] > 40).all()
    assert (grown[128, 60] == 40).all() and (grown[128, 128] == 200).all()  # beyond the grown mask: the picture
    shrunk_to_nothing = Request(mode=Mode.INPAINT, image=image, mask=painted, edit_box=box, mask_grow=-64)
    assert np.array_equal(paused_pictures(shrunk_to_nothing, preview), preview)  # the run will refuse it
