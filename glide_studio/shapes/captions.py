"""Captions of the shapes world from a small grammar, and a parser for that grammar.

Grammar (lower case, no final period):
    caption    := objects [" on a" [style] colour " background"]  |  "a" [style] colour " background"
    objects    := phrase | phrase " and " phrase | phrase ", " phrase " and " phrase | phrase relation phrase
    phrase     := article [size] colour kind [position]
    relation   := " above " | " below " | " to the left of " | " to the right of "
    position   := " on the left" | " on the right" | " at the top" | " at the bottom" | " in the center"
                | " in the top left corner" | ... (four corners)
Position words are only used when the object is clearly in that zone, relations only when clearly true.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .world import BACKGROUND_STYLES, KINDS, PALETTE, SIZES, Scene, ShapeObject, ShapesError

POSITIONS: tuple[str, ...] = (
    "left", "right", "top", "bottom", "center", "top left", "top right", "bottom left", "bottom right",
)
RELATIONS: tuple[str, ...] = ("above", "below", "to the left of", "to the right of")
STYLE_WORDS: dict[str, str | None] = {
    "plain": None, "gradient": "shaded", "stripes": "striped", "checker": "checkered", "noise": "mottled",
}
_STYLE_BY_WORD = {word: style for style, word in STYLE_WORDS.items() if word}
_SYNONYMS = {"big": "large", "tiny": "small", "grey": "gray", "centre": "center", "middle": "center"}
_RELATION_MARGIN = 0.15


class ParsedPhrase(NamedTuple):
    colour: str | None
    kind: str | None
    size: str | None
    position: str | None


class ParsedCaption(NamedTuple):
    objects: list[ParsedPhrase]
    relation: str | None  # relation between objects[0] and objects[1], if the caption has one
    background: tuple[str, str | None] | None  # (colour, style or None)


def position_word(cx: float, cy: float) -> str | None:
    """The position word that clearly holds for a centre (normalised), or None when ambiguous."""
    horizontal = "left" if cx < 0.35 else "right" if cx > 0.65 else "center" if 0.42 < cx < 0.58 else None
    vertical = "top" if cy < 0.35 else "bottom" if cy > 0.65 else "center" if 0.42 < cy < 0.58 else None
    if horizontal in ("left", "right") and vertical in ("top", "bottom"):
        return f"{vertical} {horizontal}"
    if horizontal in ("left", "right"):
        return horizontal
    if vertical in ("top", "bottom"):
        return vertical
    if horizontal == vertical == "center":
        return "center"
    return None


def position_holds(position: str, cx: float, cy: float, tolerance: float = 0.05) -> bool:
    """Lenient check that a normalised centre agrees with a position word (used by the oracle)."""
    if position not in POSITIONS:
        raise ShapesError(f"unknown position {position!r}; expected one of {', '.join(POSITIONS)}")
    if position == "center":
        return abs(cx - 0.5) < 0.15 + tolerance and abs(cy - 0.5) < 0.15 + tolerance
    tests = {
        "left": cx < 0.5 - tolerance,
        "right": cx > 0.5 + tolerance,
        "top": cy < 0.5 - tolerance,
        "bottom": cy > 0.5 + tolerance,
    }
    return all(tests[word] for word in position.split())


def relation_between(a: ShapeObject, b: ShapeObject) -> str | None:
    """The relation word that clearly holds for "a <relation> b", or None."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    if abs(dy) > abs(dx) and abs(dy) > _RELATION_MARGIN:
        return "above" if dy > 0 else "below"
    if abs(dx) > abs(dy) and abs(dx) > _RELATION_MARGIN:
        return "to the left of" if dx > 0 else "to the right of"
    return None


def _with_article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _position_suffix(position: str) -> str:
    if position in ("left", "right"):
        return f" on the {position}"
    if position in ("top", "bottom"):
        return f" at the {position}"
    if position == "center":
        return " in the center"
    return f" in the {position} corner"


def caption_for_object(
    scene: Scene,
    index: int,
    rng: np.random.Generator,
    size_probability: float = 0.5,
    position_probability: float = 0.5,
) -> str:
    """The phrase naming object `index`, e.g. "a large blue square on the left"."""
    if not 0 <= index < len(scene.objects):
        raise ShapesError(f"object index {index} out of range for a scene of {len(scene.objects)} objects")
    obj = scene.objects[index]
    words = f"{obj.colour} {obj.kind}"
    if rng.random() < size_probability:
        words = f"{obj.size} {words}"
    phrase = _with_article(words)
    position = position_word(obj.cx, obj.cy)
    if position is not None and rng.random() < position_probability:
        phrase += _position_suffix(position)
    return phrase


def background_phrase(scene: Scene, rng: np.random.Generator, style_probability: float = 0.5) -> str:
    bg = scene.background
    style = STYLE_WORDS.get(bg.style)
    words = f"{style} {bg.colour}" if style and rng.random() < style_probability else bg.colour
    return _with_article(words) + " background"


def describe(scene: Scene, rng: np.random.Generator, background_probability: float = 0.6) -> str:
    """A whole-scene caption, e.g. "a yellow star above a green triangle on a white background"."""
    objs = scene.objects
    if not objs:
        return background_phrase(scene, rng)
    order = [int(i) for i in rng.permutation(len(objs))]
    relation = relation_between(objs[order[0]], objs[order[1]]) if len(objs) == 2 else None
    if relation is not None and rng.random() < 0.6:
        first = caption_for_object(scene, order[0], rng, position_probability=0.0)
        second = caption_for_object(scene, order[1], rng, position_probability=0.0)
        text = f"{first} {relation} {second}"
    else:
        phrases = [caption_for_object(scene, i, rng) for i in order]
        text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if rng.random() < background_probability:
        text += " on " + background_phrase(scene, rng)
    return text


caption = describe

_PHRASE_RE = re.compile(
    r"^(?:an?|the)\s+(?:(?P<size>\w+)\s+)?(?P<colour>\w+)\s+(?P<kind>\w+)"
    r"(?:\s+(?:on|at|in)\s+the\s+(?P<position>top left|top right|bottom left|bottom right|\w+)(?:\s+corner)?)?$"
)
_BACKGROUND_RE = re.compile(r"^(?P<head>.*?)\s*\b(?:on\s+)?an?\s+(?:(?P<style>\w+)\s+)?(?P<colour>\w+)\s+background$")


def _normalise(text: str) -> str:
    words = re.sub(r"[^a-z,]+", " ", text.lower()).replace(",", " , ").split()
    return " ".join(_SYNONYMS.get(w, w) for w in words)


def parse_phrase(phrase: str) -> ParsedPhrase:
    """(colour, kind, size, position) of one object phrase of our grammar; missing parts are None.

    Lenient about words it knows anywhere in the phrase ("big red circle, left" still parses), so it
    can read hand-written prompts too. Raises ShapesError when neither a colour nor a kind is present.
    """
    text = _normalise(phrase).replace(" ,", "")
    match = _PHRASE_RE.match(text)
    if match and match["kind"] in KINDS and match["colour"] in PALETTE and match["size"] in (None, *SIZES):
        pos = match["position"]
        return ParsedPhrase(match["colour"], match["kind"], match["size"], pos if pos in POSITIONS else None)
    words = text.split()
    colour = next((w for w in words if w in PALETTE), None)
    kind = next((w for w in words if w in KINDS or w.rstrip("s") in KINDS), None)
    kind = kind if kind in KINDS or kind is None else kind.rstrip("s")
    size = next((w for w in words if w in SIZES), None)
    position = None
    for candidate in sorted(POSITIONS, key=len, reverse=True):
        if re.search(rf"\b{candidate}\b", text):
            position = candidate
            break
    if colour is None and kind is None:
        raise ShapesError(f"cannot find a colour or a shape in {phrase!r}")
    return ParsedPhrase(colour, kind, size, position)


def parse_caption(text: str) -> ParsedCaption:
    """Objects, relation and background of a whole-scene caption of our grammar."""
    norm = _normalise(text)
    background = None
    bg = _BACKGROUND_RE.match(norm)
    if bg and bg["colour"] in PALETTE and (bg["style"] is None or bg["style"] in _STYLE_BY_WORD):
        background = (bg["colour"], _STYLE_BY_WORD.get(bg["style"]) if bg["style"] else None)
        norm = bg["head"].strip()
    if not norm:
        return ParsedCaption([], None, background)
    relation = None
    for rel in sorted(RELATIONS, key=len, reverse=True):
        parts = norm.split(f" {rel} ")
        if len(parts) == 2:
            relation = rel
            break
    else:
        parts = [p for p in re.split(r"\s*,\s*|\s+and\s+", norm) if p]
    return ParsedCaption([parse_phrase(p) for p in parts], relation, background)


__all__ = [
    "BACKGROUND_STYLES", "POSITIONS", "RELATIONS", "ParsedCaption", "ParsedPhrase", "background_phrase",
    "caption", "caption_for_object", "describe", "parse_caption", "parse_phrase", "position_holds",
    "position_word", "relation_between",
]
