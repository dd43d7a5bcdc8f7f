"""The editor opens pictures with the command line's loader: EXIF orientation, 16-bit scaled, the bomb limit on;
a huge picture is refused with its size and the limit, in a dialog, even when it is the file the app starts with."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glide_studio.app.errors import ImageLoadError, StudioError
from glide_studio.app.images import MAX_SIDE, load_image, load_image_bytes


def bomb_png(path: Path, side: int) -> Path:
    """A valid PNG header announcing side x side pixels, with almost no data behind it (218 KB would do for
    15000 x 15000 of one colour; 100 bytes do for the header check)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))
    return path


def test_the_editor_applies_exif_orientation_and_scales_sixteen_bit_pictures(tmp_path):
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo held upright: "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = load_image(tmp_path / "phone.jpg")
    assert upright.shape == (20, 10, 3)
    assert upright[:8].min() > 200 and upright[-8:].max() < 50  # the white half is on top

    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(tmp_path / "deep.png")  # 128 * 257
    assert np.all(load_image(tmp_path / "deep.png") == 128)  # not clipped to white


def test_huge_pictures_are_refused_with_their_size_and_the_limit(tmp_path):
    with pytest.raises(ImageLoadError, match="the image is 225.0 megapixels, over the limit of 89.5 megapixels"):
        load_image(bomb_png(tmp_path / "bomb.png", 15000))
    with pytest.raises(StudioError, match="12000x12000 .*over the limit .*GLIDE_STUDIO_MAX_MEGAPIXELS"):
        load_image_bytes(bomb_png(tmp_path / "b.png", 12000).read_bytes(), "the project's picture")
    Image.new("RGB", (MAX_SIDE + 8, 4)).save(tmp_path / "long.png")
    with pytest.raises(ImageLoadError, match=f"is {MAX_SIDE + 8}x4; the largest side the editor takes is {MAX_SIDE}"):
        load_image(tmp_path / "long.png")


def test_opening_a_bomb_in_the_window_shows_the_reason(qtbot, tmp_path, monkeypatch):
    from window_helpers import open_window

    from glide_studio.app.fake_engine import FakeEngine
    from glide_studio.ui import dialogs

    shown = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message: shown.append((title, message)))
    window = open_window(qtbot, tmp_path, FakeEngine(), np.zeros((32, 32, 3), np.uint8), show=False)
    before = window.controller.document.picture.copy()
    assert window.files.open_path(bomb_png(tmp_path / "bomb.png", 15000)) is False
    assert shown and shown[0][0] == "Could not open the picture"
    assert "225.0 megapixels, over the limit of 89.5 megapixels" in shown[0][1]
    assert np.array_equal(window.controller.document.picture, before)


def test_the_app_started_with_a_bomb_shows_a_dialog_and_lives(tmp_path):
    """The app as its own process, given the bomb as the file to open: the reason reaches a dialog, the window
    stays up, and the process ends normally when the window is closed."""
    bomb = bomb_png(tmp_path / "bomb.png", 15000)
    script = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from glide_studio import cli

        app = QApplication(["glide-studio"])
        seen = []

        def look():
            box = QApplication.activeModalWidget()
            if box is None:
                QTimer.singleShot(100, look)
                return
            print("DIALOG:", box.windowTitle(), "|", box.text(), flush=True)
            box.accept()
            QTimer.singleShot(200, lambda: [window.close() for window in QApplication.topLevelWidgets()
                                            if window.isWindow() and window.isVisible()])

        QTimer.singleShot(300, look)
        sys.exit(cli.main(sys.argv[1:]))
    """)
    home = tmp_path / "home"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "GLIDE_STUDIO_DATA": str(home / "glide"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(bomb), "--fake-engine"], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "DIALOG: Could not open the picture |" in done.stdout
    assert "225.0 megapixels, over the limit of 89.5 megapixels" in done.stdout


def test_the_limit_is_a_preference_of_the_editor(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog
    from window_helpers import open_window

    from glide_studio import imageio
    from glide_studio.app.fake_engine import FakeEngine

    monkeypatch.delenv(imageio.MAX_PIXELS_ENV, raising=False)  # restored after the test, whatever the window sets
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # raising the limit raises Pillow's too
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *args, **kwargs: (150.0, True))
    window = open_window(qtbot, tmp_path, FakeEngine(), np.zeros((32, 32, 3), np.uint8), show=False)
    bomb = bomb_png(tmp_path / "big.png", 11000)  # 121 MP: over Pillow's 89.5, under the chosen 150
    with pytest.raises(ImageLoadError, match="over the limit of 89.5 megapixels"):
        load_image(bomb)
    window.ask_max_megapixels()
    assert imageio.max_pixels() == 150_000_000
    with pytest.raises(ImageLoadError) as raised:  # now it is decoded (and this file has no pixel data)
        load_image(bomb)
    assert "over the limit" not in str(raised.value)
    window.close()

    imageio.set_max_megapixels(None)
    try:
        again = open_window(qtbot, tmp_path, FakeEngine(), np.zeros((32, 32, 3), np.uint8), show=False)
        assert imageio.max_pixels() == 150_000_000  # the preference (same settings file) is applied at start
        again.close()
    finally:
        imageio.set_max_megapixels(None)
