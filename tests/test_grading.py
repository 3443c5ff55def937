"""Grading rules, one per answer kind, on hand-written cases."""

from __future__ import annotations

import pytest

from vlm_focus.data import Sample, grade
from vlm_focus.data.grading import normalize
from vlm_focus.data.shapes import make_sample
from vlm_focus.data.shapes_loader import to_sample
from vlm_focus.errors import InputError


def choice(answer="dog", options=("cat", "dog", "dark red", "red")):
    return Sample(id="c", question="Which?", answer=answer, options=list(options), answer_kind="choice")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", True),
        ("(B)", True),
        ("B.", True),
        ("b", True),
        ("B) dog", True),
        ("The answer is B.", True),
        ("Answer: (B)", True),
        ("A", False),
        ("(C)", False),
        ("E", False),  # no option E
        ("It is a dog.", True),
        ("DOG!", True),
        ("A dog.", True),  # the article is not option A
        ("A cat sits there.", False),
        ("a cat or a dog", False),  # two options: ambiguous
        ("dogs", False),  # whole words only
        ("", False),
    ],
)
def test_choice(text, expected):
    assert grade(text, choice()) == (expected, "choice")


def test_choice_two_options_named_is_wrong_even_with_the_right_one():
    assert grade("a cat or a dog", choice(answer="cat"))[0] is False
    assert grade("a dog or a cat", choice(answer="dog"))[0] is False


def test_choice_longest_option_wins():
    s = choice(answer="red")
    assert grade("It is red.", s)[0] is True
    assert grade("It is dark red.", s)[0] is False  # "dark red" contains "red": it wins
    assert grade("It is dark red.", choice(answer="dark red"))[0] is True


def test_choice_numbers_and_letter_only_samples():
    s = choice(answer="2", options=("3", "2", "1", "0"))
    assert grade("There are two.", s)[0] is True
    assert grade("There are 2 organs.", s)[0] is True
    assert grade("There are three.", s)[0] is False
    letter_only = Sample(
        id="l", question="?", answer="C", answer_kind="choice", extras={"answer_letter": "C"}
    )
    assert grade("(C)", letter_only)[0] is True and grade("C dog", letter_only)[0] is False


@pytest.mark.parametrize(
    "text, ref, expected",
    [
        ("Yes", "yes", True),
        ("yes, it is.", "yes", True),
        ("No.", "no", True),
        ("No, there is none.", "yes", False),
        ("Yes.", "no", False),
        ("I think yes", "yes", False),  # the leading word decides
        ("", "yes", False),
    ],
)
def test_yesno(text, ref, expected):
    s = Sample(id="y", question="Is it?", answer=ref, answer_kind="yesno")
    assert grade(text, s) == (expected, "yesno")


@pytest.mark.parametrize(
    "text, ref, expected",
    [
        ("The bus is red.", "red", True),
        ("RED", "red", True),
        ("The bus is reddish.", "red", False),
        ("There are two people.", "2", True),
        ("There are 2 people.", "two", True),
        ("There are 12 people.", "2", False),
        ("It is a tennis racket", "the tennis racket", True),
        ("A man's hat", "man", True),
        ("The cat.", "dog", False),
        ("3.5 meters", "3.5", True),
    ],
)
def test_short(text, ref, expected):
    s = Sample(id="s", question="?", answer=ref)
    assert grade(text, s) == (expected, "short")


def test_short_alternatives_and_no_reference():
    s = Sample(id="s", question="?", answer="red", extras={"alternatives": ["maroon"]})
    assert grade("maroon", s)[0] is True and grade("blue", s)[0] is False
    assert grade("red", Sample(id="n", question="?")) == (None, "short")


def test_free_is_not_graded():
    s = Sample(id="f", question="Describe.", answer="A long reference.", answer_kind="free")
    assert grade("A long reference.", s) == (None, "free")


def test_shapes_uses_the_key_word():
    raw = make_sample(3, 0, qtype="color", min_objects=2)
    s = to_sample(raw, 3, 0)
    assert grade(raw.answer, s) == (True, "shapes")
    other = next(c for c in ("red", "green", "blue", "yellow") if c != raw.key)
    assert grade(f"It is {other}.", s)[0] is False
    assert grade(f"{raw.key} or {other}", s)[0] is False  # a competitor is wrong
    # from the record alone (no generator object), as after a reload
    bare = Sample(id=s.id, question=s.question, answer=s.answer, answer_kind="shapes", extras=dict(s.extras))
    assert grade(raw.answer, bare)[0] is True and grade(f"It is {other}.", bare)[0] is False
    assert grade("yes", Sample(id="x", question="?", answer_kind="shapes")) == (None, "shapes")


def test_normalize():
    assert normalize("The Two cats, an owl!") == ["2", "cats", "owl"]
    assert normalize("1,000 people.") == ["1000", "people"]


def test_unknown_kind_refused():
    with pytest.raises(InputError, match="answer_kind"):
        Sample(id="x", question="?", answer_kind="essay")
