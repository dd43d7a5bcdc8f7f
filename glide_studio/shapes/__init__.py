"""The synthetic shapes world: scenes, rendering, captions, training masks and an exact oracle.

numpy + Pillow only; it sits outside the app's layer stack so training scripts and tests can use it freely.
"""

from .captions import (
    POSITIONS,
    RELATIONS,
    ParsedCaption,
    ParsedPhrase,
    caption,
    caption_for_object,
    describe,
    parse_caption,
    parse_phrase,
    position_holds,
    position_word,
    relation_between,
)
from .masks import (
    MASK_KINDS,
    Sketch,
    TrainingMask,
    box_mask,
    full_mask,
    make_sketch,
    object_silhouette_mask,
    sample_training_mask,
    stroke_mask,
)
from .world import (
    BACKGROUND_STYLES,
    COLOURS,
    KINDS,
    PALETTE,
    SIZES,
    Background,
    Scene,
    ShapeObject,
    ShapesError,
    object_alpha,
    object_mask,
    render,
    render_64,
    render_pair,
    sample_scene,
    sample_scenes,
)

__all__ = [
    "BACKGROUND_STYLES", "COLOURS", "KINDS", "MASK_KINDS", "PALETTE", "POSITIONS", "RELATIONS", "SIZES",
    "Background", "ParsedCaption", "ParsedPhrase", "Scene", "ShapeObject", "ShapesError", "Sketch",
    "TrainingMask", "box_mask", "caption", "caption_for_object", "describe", "full_mask", "make_sketch",
    "object_alpha", "object_mask", "object_silhouette_mask", "parse_caption", "parse_phrase",
    "position_holds", "position_word", "relation_between", "render", "render_64", "render_pair",
    "sample_scene", "sample_scenes", "sample_training_mask", "stroke_mask",
]
