"""GLIGEN regions through the user's fronts: the repeatable --region flag, the run record (JSON) and A1111's
parameters text carry the boxes, `repeat` replays them to the same pixels, and a bad region is refused with a clear
message (exit status 2, no traceback) before any model loads."""

from __future__ import annotations

import numpy as np
import pytest
from gligen_helpers import save_gligen_folder
from PIL import Image

from glide_studio import cli
from glide_studio.pipelines.request import Region, Request
from glide_studio.png_metadata import a1111_text, parse_a1111, read_record
from glide_studio.runs.codec import decode, encode
from glide_studio.runs.record import RunContext, RunRecord

WIDTH, HEIGHT = 48, 40
REGIONS = (Region(4, 4, 20, 20, "a red ball"), Region(18, 10, 30, 28, "a cube; blue, shiny: big"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gligen-models")
    return save_gligen_folder(root / "generation", seed=6), save_gligen_folder(root / "inpainting", seed=7,
                                                                               in_channels=9)


def status_of(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def region_flags(regions=REGIONS) -> list[str]:
    return [part for region in regions
            for part in ("--region", f"{region.x0},{region.y0},{region.x1},{region.y1}={region.phrase}")]


def test_the_regions_round_trip_through_the_record_and_the_a1111_text():
    request = Request(base_model="sd:/models/gligen", prompt="a garden", regions=REGIONS, grounding_share=0.5)
    record = RunRecord.of(request, RunContext("cpu", "fp32"))
    assert decode(RunRecord, encode(record)).request.regions == REGIONS
    text = a1111_text(record, (512, 512))
    assert 'Regions: "4,4,20,20=a red ball; 18,10,30,28=a cube; blue, shiny: big"' in text
    assert "GLIGEN beta: 0.5" in text
    read_back = parse_a1111(text).record.request
    assert read_back.regions == REGIONS and read_back.grounding_share == 0.5
    plain = a1111_text(RunRecord.of(request.with_(regions=()), RunContext("cpu", "fp32")), (512, 512))
    assert "Regions" not in plain and "GLIGEN" not in plain  # no boxes: nothing about them


def test_grounded_generate_and_inpaint_from_the_command_line_and_repeat(tmp_path, folders, user_data_dir):
    generation, inpainting = folders
    common = ["--prompt", "a garden", "--steps", "3", "--guidance-scale", "5", "--seed", "8", "--scheduler", "Euler a",
              "--device", "cpu", "--precision", "fp32", "-q"]
    out = tmp_path / "grounded.png"
    assert cli.main(["generate", "--model", f"sd:{generation}", *common, *region_flags(), "--grounding-share", "1",
                     "-o", str(out)]) == 0
    grounded = np.asarray(Image.open(out))
    assert grounded.shape == (32, 32, 3)
    record = read_record(out).record
    assert record.request.regions == REGIONS and record.request.grounding_share == 1.0
    assert parse_a1111(Image.open(out).text["parameters"]).record.request.regions == REGIONS

    assert cli.main(["generate", "--model", f"sd:{generation}", *common, "-o", str(tmp_path / "plain.png")]) == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "plain.png")), grounded)
    assert cli.main(["repeat", str(out), "-q", "-o", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(sorted(tmp_path.glob("again*.png"))[0])), grounded)

    picture = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[2:34, 2:36] = 255
    Image.fromarray(picture).save(tmp_path / "picture.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert cli.main(["inpaint", "--model", f"sd:{inpainting}", *common, *region_flags(), "--image",
                     str(tmp_path / "picture.png"), "--mask", str(tmp_path / "mask.png"), "-o",
                     str(tmp_path / "inpainted.png")]) == 0
    inpainted = np.asarray(Image.open(tmp_path / "inpainted.png"))
    kept = mask == 0
    assert inpainted.shape == (HEIGHT, WIDTH, 3) and np.array_equal(inpainted[kept], picture[kept])
    assert read_record(tmp_path / "inpainted.png").record.request.regions == REGIONS


@pytest.mark.parametrize(("region", "message"), [
    ("1,2,3=a ball", "--region: expected x0,y0,x1,y1=phrase (4 numbers), got '1,2,3=a ball'"),
    ("1,2,3,4", "--region: expected x0,y0,x1,y1=phrase, got '1,2,3,4'"),
    ("9,2,3,4=a ball", "--region: a region needs 0 <= x0 < x1 and 0 <= y0 < y1, got (9, 2, 3, 4)"),
    ("1,2,3,4=   ", "--region: the region (1, 2, 3, 4) needs a phrase saying what it shows"),
    ("a,2,3,4=a ball", "--region: expected a whole number, got 'a'"),
])
def test_a_bad_region_is_refused_with_a_clear_message(tmp_path, folders, capsys, region, message):
    argv = ["generate", "--model", f"sd:{folders[0]}", "--prompt", "x", "--region", region, "-q", "-o",
            str(tmp_path / "o.png")]
    assert status_of(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "o.png").exists()


def test_regions_where_they_mean_nothing_are_refused(tmp_path, folders, capsys):
    # A GLIDE model: the flag has no effect, as for any setting of another family.
    assert status_of(["generate", "--prompt", "x", "--region", "1,1,9,9=a ball", "-q", "-o",
                      str(tmp_path / "o.png")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--region has no effect on this generate run" in err and "Traceback" not in err
    # A box that lies outside the picture the model sees.
    assert status_of(["generate", "--model", f"sd:{folders[0]}", "--prompt", "x", "--region", "40,40,60,60=a ball",
                      "--steps", "1", "--device", "cpu", "--precision", "fp32", "-q", "-o",
                      str(tmp_path / "o.png")]) != 0
    err = capsys.readouterr().err
    assert "lies outside the 32 px canvas" in err and "Traceback" not in err and not (tmp_path / "o.png").exists()
