"""Loading pictures, masks and sketches: conversions, orientation, and clear errors for bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glide_studio.imageio import (
    MAX_PIXELS_ENV,
    ImageLoadError,
    load_image,
    load_image_data,
    load_mask,
    load_sketch,
    max_pixels,
)


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_rgb_png_round_trip(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    loaded = load_image(_save(tmp_path / "p.png", pixels))
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, pixels)


def test_alpha_is_flattened_on_white_or_kept(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half transparent
    path = _save(tmp_path / "a.png", rgba)
    flat = load_image(path)
    assert flat.shape == (8, 8, 3)
    assert tuple(flat[0, 0]) == (200, 0, 0) and tuple(flat[7, 7]) == (255, 255, 255)
    kept = load_image(path, keep_alpha=True)
    assert np.array_equal(kept, rgba)
    assert load_sketch(_save(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8)))[..., 3].min() == 255


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(pixels).save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.shape == (20, 10, 3)
    assert loaded[0].min() == 255 and loaded[-1].max() == 0  # the white half is now on top


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    deep = np.full((4, 4), 32896, dtype=np.uint16)  # 128 * 257
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    assert np.all(load_image(path) == 128)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a picture at all", "not an image file"),
        (b"", "not an image file"),
    ],
)
def test_non_image_files_are_refused(tmp_path, content, message):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message):
        load_image(path)


def test_truncated_files_are_refused(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for suffix in ("png", "jpg"):
        whole = _save(tmp_path / f"whole.{suffix}", noise).read_bytes()
        cut = tmp_path / f"cut.{suffix}"
        cut.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(ImageLoadError, match="broken: the file is truncated"):
            load_image(cut)


def test_missing_files_and_directories(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid PNG header announcing side x side pixels, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_decompression_bomb_header_is_refused_before_decoding_with_the_size_and_limit(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    # Between Pillow's limit and twice it, Pillow only warns: our check names the size from the header.
    between = bomb_png(tmp_path / "between.png", 12000)
    with pytest.raises(ImageLoadError, match=r"12000x12000 \(144.0 megapixels\), over the limit of 89.5 megapixels"
                       r".*GLIDE_STUDIO_MAX_MEGAPIXELS"):
        load_image(between)
    # Beyond twice it Pillow refuses while reading the header; the message still names the size and the limit.
    bomb = bomb_png(tmp_path / "bomb.png", 15000)
    with pytest.raises(ImageLoadError, match=r"the image is 225.0 megapixels, over the limit of 89.5 megapixels"):
        load_image(bomb)
    with pytest.raises(ImageLoadError, match="the pasted data: the image is 225.0 megapixels"):
        load_image_data(bomb.read_bytes(), "the pasted data")
    small = _save(tmp_path / "small.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(small, max_pixels=100)
    with pytest.raises(ImageLoadError, match="20x20; the largest side the editor takes is 16 px"):
        load_image(small, max_side=16)


def test_the_limit_can_be_raised_and_pillows_guard_stays_on(tmp_path, monkeypatch):
    bomb = bomb_png(tmp_path / "bomb.png", 15000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # something switched Pillow's guard off
    monkeypatch.setenv(MAX_PIXELS_ENV, "300")
    assert max_pixels() == 300_000_000
    # Past the size check the 100 bytes of pixel data are too few: the header is no longer what refuses it.
    with pytest.raises(ImageLoadError, match="broken"):
        load_image(bomb)
    assert Image.MAX_IMAGE_PIXELS == 300_000_000  # on again, at least as high as ours
    monkeypatch.setenv(MAX_PIXELS_ENV, "ten")
    with pytest.raises(ImageLoadError, match="GLIDE_STUDIO_MAX_MEGAPIXELS must be a positive number"):
        load_image(bomb)


def test_a_dark_sixteen_bit_picture_is_scaled_as_sixteen_bit(tmp_path):
    path = tmp_path / "dark.png"
    Image.fromarray(np.full((3, 3), 1000, dtype=np.uint16)).save(path)
    assert np.all(load_image(path) == round(1000 / 65535 * 255))


def test_soft_masks_are_read_at_half_and_a_mask_that_paints_nothing_says_why(tmp_path):
    grey = _save(tmp_path / "grey.png", np.full((8, 8), 102, np.uint8))  # a flat 40 % grey
    with pytest.raises(ImageLoadError, match="paints nothing: its brightest pixel is 40% and only pixels of "
                       "50% or more count"):
        load_mask(grey)
    ramp = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (8, 1))
    notes = []
    mask = load_mask(_save(tmp_path / "ramp.png", ramp), on_note=notes.append)
    assert mask.sum() == 8 * 4 and mask[:, 4:].all()
    assert len(notes) == 1 and "75% of the mask is grey (soft)" in notes[0] and "32 pixels painted" in notes[0]
    assert load_mask(_save(tmp_path / "black.png", np.zeros((4, 4), np.uint8))).sum() == 0  # empty: the run says so


def test_masks_from_brightness_alpha_and_zero_one(tmp_path):
    grey = np.zeros((10, 10), dtype=np.uint8)
    grey[2:5, 2:5] = 255
    grey[6, 6] = 100  # dark grey is not painted
    mask = load_mask(_save(tmp_path / "m.png", grey))
    assert mask.dtype == bool and mask.sum() == 9 and not mask[6, 6]

    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[0:3, 0:3, 3] = 255
    assert load_mask(_save(tmp_path / "alpha.png", rgba)).sum() == 9

    ones = (grey > 0).astype(np.uint8)
    assert load_mask(_save(tmp_path / "ones.png", ones)).sum() == 10


def test_mask_is_fitted_to_the_picture_size(tmp_path):
    half = np.zeros((50, 100), dtype=np.uint8)
    half[:, :50] = 255
    path = _save(tmp_path / "half.png", half)
    mask = load_mask(path, size=(200, 100))
    assert mask.shape == (100, 200) and mask[:, :100].all() and not mask[:, 100:].any()
    with pytest.raises(ImageLoadError, match="different shape"):
        load_mask(path, size=(100, 100))
