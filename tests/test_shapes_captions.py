"""The shapes world's caption grammar: captions say what is true, and the parser reads them back."""

from __future__ import annotations

import numpy as np
import pytest

from glide_studio.shapes import captions, world


def test_object_phrases_parse_back_to_the_object():
    rng = np.random.default_rng(0)
    seen_positions = set()
    for scene in world.sample_scenes(101, 150):
        for i, obj in enumerate(scene.objects):
            phrase = captions.caption_for_object(scene, i, rng, size_probability=0.5, position_probability=1.0)
            parsed = captions.parse_phrase(phrase)
            assert (parsed.colour, parsed.kind) == (obj.colour, obj.kind), phrase
            assert parsed.size in (None, obj.size)
            assert parsed.position == captions.position_word(obj.cx, obj.cy), phrase
            if parsed.position is not None:
                seen_positions.add(parsed.position)
                assert captions.position_holds(parsed.position, obj.cx, obj.cy)
    assert {"left", "right", "top", "bottom"} <= seen_positions


def test_articles_and_position_phrases():
    scene = world.Scene(
        world.Background("white"),
        (world.ShapeObject("circle", "orange", "large", 0.2, 0.2, 0.2),),
    )
    rng = np.random.default_rng(0)
    phrase = captions.caption_for_object(scene, 0, rng, size_probability=0.0, position_probability=1.0)
    assert phrase == "an orange circle in the top left corner"
    phrase = captions.caption_for_object(scene, 0, rng, size_probability=1.0, position_probability=0.0)
    assert phrase == "a large orange circle"


def test_whole_scene_captions_parse_back():
    rng = np.random.default_rng(1)
    relations = 0
    for scene in world.sample_scenes(202, 200):
        text = captions.describe(scene, rng)
        parsed = captions.parse_caption(text)
        named = sorted((p.colour, p.kind) for p in parsed.objects)
        assert named == sorted((o.colour, o.kind) for o in scene.objects), text
        if parsed.background is not None:
            assert parsed.background[0] == scene.background.colour
            assert parsed.background[1] in (None, scene.background.style)
        if parsed.relation is not None:
            relations += 1
            first, second = (next(o for o in scene.objects if (o.colour, o.kind) == (p.colour, p.kind))
                             for p in parsed.objects)
            assert captions.relation_between(first, second) == parsed.relation, text
    assert relations > 10


def test_empty_scene_caption_names_the_background():
    scene = world.Scene(world.Background("gray", "stripes"))
    text = captions.describe(scene, np.random.default_rng(0))
    assert text in ("a gray background", "a striped gray background")
    assert captions.parse_caption(text).background[0] == "gray"


def test_parser_is_lenient_but_refuses_nonsense():
    assert captions.parse_phrase("Big RED circle, left") == ("red", "circle", "large", "left")
    assert captions.parse_phrase("a red star in the middle") == ("red", "star", None, "center")
    with pytest.raises(world.ShapesError, match="colour or a shape"):
        captions.parse_phrase("a corgi in a field")
