"""Compositional captions over scene attributes, and their inverse :func:`parse`.

A caption mentions a chosen subset of a scene's attributes ("two small red striped circles on a dark
background", "a photo of a star at the top"). :func:`parse` reads attribute words back from any text, so the
procedural generator can turn prompts into scenes and tests can check caption <-> attribute consistency.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from clbench.world.attributes import (
    BACKGROUND_NAMES,
    COLOUR_NAMES,
    COUNT_WORDS,
    DIGITS,
    FILLS,
    LETTERS,
    PLURAL_SHAPES,
    POSITION_PHRASES,
    SHAPES,
    Scene,
)

ATTRIBUTES: tuple[str, ...] = ("object", "colour", "size", "position", "fill", "background", "count")
WRAPPERS: tuple[str, ...] = (
    "{}", "a photo of {}", "an image of {}", "a drawing of {}", "there is {}", "a picture showing {}",
)
GENERIC_NOUNS: tuple[tuple[str, str], ...] = (("shape", "shapes"), ("object", "objects"))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun(obj: str | None, plural: bool, generic: int = 0) -> str:
    """The noun for an object ("circle", "crosses", "letter A"), or a generic one when ``obj`` is None."""
    if obj is None:
        return GENERIC_NOUNS[generic % len(GENERIC_NOUNS)][int(plural)]
    if obj in SHAPES:
        return PLURAL_SHAPES[obj] if plural else obj
    family, symbol = obj.split(" ", 1)
    return f"{family}s {symbol}" if plural else obj


DETERMINERS: tuple[str, ...] = ("a", "one", "the")  # for one object; "a" becomes "an" before a vowel


def noun_phrase(scene: Scene, mention: Collection[str], generic: int = 0, determiner: int = 0) -> str:
    """Determiner, adjectives (size, colour, fill), noun, then position and background phrases.

    ``count`` is always expressed: singular nouns mean one object, plurals get their number word unless
    ``count`` is left out of ``mention`` (then "red circles" says only "more than one").
    """
    plural = scene.count > 1
    words = [w for attr, w in (("size", scene.size), ("colour", scene.colour), ("fill", scene.fill))
             if attr in mention]
    words.append(noun(scene.object if "object" in mention else None, plural, generic))
    if plural:
        det = COUNT_WORDS[scene.count - 1] if "count" in mention else ""
    else:
        det = DETERMINERS[determiner % len(DETERMINERS)]
        det = _article(words[0]) if det == "a" else det
    text = " ".join([det, *words]) if det else " ".join(words)
    if "position" in mention and not plural:
        text += " " + POSITION_PHRASES[scene.position]
    if "background" in mention:
        text += f" on a {scene.background} background"
    return text


def caption(scene: Scene, mention: Collection[str] = ATTRIBUTES, wrapper: int = 0, generic: int = 0,
            determiner: int = 0) -> str:
    """A caption of ``scene`` that mentions exactly the attributes in ``mention``."""
    form = WRAPPERS[wrapper % len(WRAPPERS)]
    if scene.count > 1:
        form = form.replace("there is", "there are")
    return form.format(noun_phrase(scene, mention, generic, determiner))


def mentioned(scene: Scene, mention: Collection[str]) -> dict[str, Any]:
    """What :func:`parse` must recover from ``caption(scene, mention)``."""
    out = {a: getattr(scene, a) for a in ATTRIBUTES if a in mention}
    if scene.count == 1:
        out["count"] = 1  # a singular noun says it
    else:
        out.pop("position", None)  # several objects take the quadrants; no position is drawn or said
    return out


# ---- parsing ---------------------------------------------------------------------------------------------
def _words(options: Collection[str]) -> str:
    return "|".join(sorted((re.escape(o) for o in options), key=len, reverse=True))


_SHAPE_FORMS = {**{s: (s, False) for s in SHAPES}, **{p: (s, True) for s, p in PLURAL_SHAPES.items()}}
_SHAPE_RE = re.compile(rf"\b({_words(_SHAPE_FORMS)})\b")
_LETTER_RE = re.compile(rf"\b(letter|letters|character)\s+([{''.join(LETTERS)}{''.join(LETTERS).lower()}])\b")
_DIGIT_RE = re.compile(rf"\b(digit|digits|number|numeral)\s+([{''.join(DIGITS)}])\b")
_BACKGROUND_RE = re.compile(rf"\b({_words(BACKGROUND_NAMES)})\s+background\b")
_COLOUR_RE = re.compile(rf"\b({_words(COLOUR_NAMES)})\b(?!\s+background)")
_SIZE_SYNONYMS = {"small": "small", "tiny": "small", "medium": "medium", "large": "large", "big": "large"}
_SIZE_RE = re.compile(rf"\b({_words(_SIZE_SYNONYMS)})\b")
_FILL_SYNONYMS = {**{f: f for f in FILLS}, "outline": "outlined", "hollow": "outlined", "stripes": "striped",
                  "dots": "dotted", "checked": "checkered", "filled": "solid"}
_FILL_RE = re.compile(rf"\b({_words(_FILL_SYNONYMS)})\b")
_POSITION_FORMS = {
    **{phrase: pos for pos, phrase in POSITION_PHRASES.items()},
    "in the middle": "center", "in the centre": "center", "on top": "top",
}
_POSITION_RE = re.compile(rf"\b({_words(_POSITION_FORMS)})\b")
_COUNT_FORMS = {w: i + 1 for i, w in enumerate(COUNT_WORDS)}
_COUNT_RE = re.compile(rf"\b({_words(_COUNT_FORMS)})\b")
_GENERIC_RE = re.compile(r"\b(shapes?|objects?|things?)\b")


def parse(text: str) -> dict[str, Any]:
    """Attributes a text mentions, by name (keys of :class:`Scene`); absent attributes are left out.

    Word-based, so it reads class-name prompts ("a photo of the letter B") as well as generated captions.
    """
    return _parse(text)[0]


def is_plural(text: str) -> bool | None:
    """Whether the text's noun is plural ("red circles": more than one, number unsaid); None without a noun."""
    return _parse(text)[1]


def _parse(text: str) -> tuple[dict[str, Any], bool | None]:
    lower = text.lower()
    out: dict[str, Any] = {}
    plural: bool | None = None
    if m := _LETTER_RE.search(text) or _LETTER_RE.search(lower):
        out["object"] = f"letter {m.group(2).upper()}"
        plural = m.group(1) == "letters"
    elif m := _DIGIT_RE.search(lower):
        out["object"] = f"digit {m.group(2)}"
        plural = m.group(1) == "digits"
    elif m := _SHAPE_RE.search(lower):
        out["object"], plural = _SHAPE_FORMS[m.group(1)]
    elif m := _GENERIC_RE.search(lower):
        plural = m.group(1).endswith("s")
    if m := _BACKGROUND_RE.search(lower):
        out["background"] = m.group(1)
    if m := _COLOUR_RE.search(lower):
        out["colour"] = m.group(1)
    if m := _SIZE_RE.search(lower):
        out["size"] = _SIZE_SYNONYMS[m.group(1)]
    if m := _FILL_RE.search(lower):
        out["fill"] = _FILL_SYNONYMS[m.group(1)]
    if m := _COUNT_RE.search(lower):
        out["count"] = _COUNT_FORMS[m.group(1)]
    elif plural is False:
        out["count"] = 1
    if m := _POSITION_RE.search(lower):
        out["position"] = _POSITION_FORMS[m.group(1)]
    return out, plural
