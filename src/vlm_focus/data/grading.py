"""Judging a model's answer against a sample's reference: one rule per answer kind.

``grade(answer, sample) -> (correct, rule)``; ``correct`` is ``None`` when the answer
cannot be judged by rule (free-form answers, or no reference).

- ``choice``: the option letter (``"B"``, ``"(B)"``, ``"B."``, ``"B) the cat"``) or the
  option text inside the answer (whole words; when several options appear, the longest
  wins if it contains the others, otherwise the answer is ambiguous and wrong).
- ``yesno``: the leading yes / no.
- ``short``: the reference (or one of ``extras["alternatives"]``) inside the answer, both
  normalised: lower case, no punctuation, no articles, number words as digits.
- ``free``: not judged.
- ``shapes``: :func:`vlm_focus.data.shapes.answer_correct` (the key word, no competitor).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from ..errors import InputError
from . import shapes
from .base import LETTERS, Sample

_NUMBERS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
    "twenty": "20",
}
_ARTICLES = frozenset({"a", "an", "the"})


def normalize(text: str) -> list[str]:
    """Words of ``text``: lower case, punctuation removed (a decimal point kept), articles
    dropped, number words as digits."""
    text = str(text).lower().replace("\u2019", "'")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep 3.5, drop full stops
    text = re.sub(r"'s\b", "", text)
    text = re.sub(r"[^\w\s.]", " ", text)
    words = [_NUMBERS.get(w, w) for w in text.split()]
    return [w for w in words if w not in _ARTICLES]


def _contains(words: list[str], part: list[str]) -> bool:
    n = len(part)
    return n > 0 and any(words[i : i + n] == part for i in range(len(words) - n + 1))


def _letter(answer: str, n_options: int) -> str | None:
    """The option letter an answer starts with: ``B``, ``(B)``, ``B.``, ``B)``, ``B:``,
    ``Option B``, ``Answer: B`` - a bare leading letter only when nothing follows it (so the
    article in "A cat" is not read as option A)."""
    text = answer.strip()
    text = re.sub(r"^(the\s+)?(correct\s+)?(answer|option|choice)\s*(is)?\s*[:\-]?\s*", "", text, flags=re.I)
    valid = LETTERS[:n_options]
    m = re.match(r"\(([A-Za-z])\)", text) or re.match(r"([A-Z])\s*[.):](?:\s|$)", text)
    if m is None:
        m = re.fullmatch(r"([A-Za-z])\s*[.):]?", text)
    if m is None:
        return None
    letter = m.group(1).upper()
    return letter if letter in valid else None


def grade_choice(answer: str, sample: Sample) -> bool | None:
    options = sample.options or []
    ref_letter = sample.answer_letter
    if ref_letter is None and not options:
        return None
    letter = _letter(answer, len(options) if options else len(LETTERS))
    if letter is not None:
        return letter == ref_letter
    if not options or sample.answer is None:
        return False
    words = normalize(answer)
    hits = [i for i, o in enumerate(options) if _contains(words, normalize(o))]
    # An option inside a longer matched option ("red" in "dark red") does not compete.
    top = [
        i
        for i in hits
        if not any(j != i and _contains(normalize(options[j]), normalize(options[i])) for j in hits)
    ]
    if len(top) != 1:
        return False
    return options[top[0]] == sample.answer


def grade_yesno(answer: str, sample: Sample) -> bool | None:
    ref = normalize(sample.answer or "")
    if not ref or ref[0] not in ("yes", "no"):
        return None
    words = normalize(answer)
    return bool(words) and words[0] == ref[0]


def grade_short(answer: str, sample: Sample) -> bool | None:
    refs = [sample.answer] if sample.answer else []
    refs += [str(a) for a in sample.extras.get("alternatives", []) or []]
    refs_words = [w for w in (normalize(r) for r in refs) if w]
    if not refs_words:
        return None
    words = normalize(answer)
    return any(_contains(words, r) for r in refs_words)


def grade_shapes(answer: str, sample: Sample) -> bool | None:
    src: Any = sample.source
    if not isinstance(src, shapes.Sample):
        if "qtype" not in sample.extras or "key" not in sample.extras:
            return None
        src = SimpleNamespace(qtype=sample.extras["qtype"], key=sample.extras["key"])
    return shapes.answer_correct(answer, src)


_RULES = {
    "choice": grade_choice,
    "yesno": grade_yesno,
    "short": grade_short,
    "free": lambda answer, sample: None,
    "shapes": grade_shapes,
}


def grade(answer: str, sample: Sample) -> tuple[bool | None, str]:
    """``(correct, rule name)``: ``correct`` is ``None`` when the rule cannot judge."""
    rule = _RULES.get(sample.answer_kind)
    if rule is None:
        raise InputError(f"sample {sample.id!r}: no grading rule for answer kind {sample.answer_kind!r}")
    return rule(str(answer or ""), sample), sample.answer_kind
