"""A setting whose usual value depends on the model family (the CFG scale: GLIDE's 3, Stable Diffusion's 7.5)
follows the family the user moves to, unless the user chose it: in the editor when the model picker changes
family, on the command line when the flag is not given."""

from __future__ import annotations

from glide_studio.app.run_settings import RunSettings
from glide_studio.pipelines.request import Family, Request

SD = "sd:/models/some-inpainting"


def test_a_request_takes_its_familys_usual_value_unless_kept():
    assert Request().with_family_defaults().guidance_scale == 3.0
    assert Request(base_model=SD).with_family_defaults().guidance_scale == 7.5
    assert Request(base_model=SD, guidance_scale=4.0).with_family_defaults(keep={"guidance_scale"}) \
        .guidance_scale == 4.0


def test_moving_between_families_keeps_a_value_the_user_changed():
    glide_usual = Request(base_model=SD, guidance_scale=3.0)
    assert glide_usual.with_family_defaults(previous=Family.GLIDE).guidance_scale == 7.5
    chosen = Request(base_model=SD, guidance_scale=5.0)
    assert chosen.with_family_defaults(previous=Family.GLIDE).guidance_scale == 5.0
    back = Request(guidance_scale=7.5).with_family_defaults(previous=Family.SD)
    assert back.guidance_scale == 3.0


def test_the_model_picker_switches_the_cfg_scale_with_the_family():
    settings = RunSettings()
    on_sd = settings.with_models(SD)
    assert on_sd.request.base_model == SD and on_sd.request.guidance_scale == 7.5
    assert on_sd.with_models("demo").request.guidance_scale == 3.0
    tuned = on_sd.with_request(guidance_scale=9.0)
    assert tuned.with_models("demo").request.guidance_scale == 9.0  # the user's own value stays
    assert on_sd.with_models("sd:/models/another").request.guidance_scale == 7.5  # same family: untouched
    upsample_off = settings.with_models("demo", upsample=False)
    assert upsample_off.request.guidance_scale == settings.request.guidance_scale


def test_the_controls_show_the_sd_cfg_scale_once_an_sd_model_is_picked(qtbot):
    from glide_studio.app.engine import ModelChoice
    from glide_studio.ui.controls import ControlsPanel

    choices = [ModelChoice("demo", "Demo", True), ModelChoice(SD, "SD · some-inpainting", True)]
    panel = ControlsPanel(RunSettings(), choices, ["cpu"])
    qtbot.addWidget(panel)
    scale = panel.fields.widgets["guidance_scale"]
    assert scale.value() == 3.0
    panel.model.setCurrentIndex(1)
    assert scale.value() == 7.5 and panel.run_settings().request.guidance_scale == 7.5
    scale.setValue(6.0)
    panel.model.setCurrentIndex(0)
    assert scale.value() == 6.0  # the user's own value stays across families
