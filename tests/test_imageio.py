"""Loading pictures, masks and sketches: conversions, orientation, and clear errors for bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glide_studio.imageio import ImageLoadError, load_image, load_mask, load_sketch


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
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path):
    # A valid PNG header announcing 30000 x 30000 pixels, with almost no data behind it.
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 100)
    bomb = tmp_path / "bomb.png"
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    with pytest.raises(ImageLoadError, match="30000x30000 .*over the limit of 400 megapixels"):
        load_image(bomb)
    small = _save(tmp_path / "small.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(small, max_pixels=100)


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
