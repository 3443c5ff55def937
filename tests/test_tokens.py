import pytest
import torch

from vlm_focus.errors import InputError
from vlm_focus.tokens import is_filler, select_tokens

TOKENS = [" The", " circle", " is", " red", "."]
LLR = torch.tensor([0.2, 1.5, -0.1, 3.0, 1.2])


def test_llr_threshold():
    assert select_tokens(LLR, alpha=1.0) == [1, 3, 4]
    assert select_tokens(LLR, alpha=2.0) == [3]
    assert select_tokens(LLR, alpha=5.0) == []


def test_joint_and_filters():
    assert select_tokens(LLR, strategy="joint") == [0, 1, 2, 3, 4]
    assert select_tokens(LLR, strategy="joint", drop_first=True) == [1, 2, 3, 4]
    # stop-words judged on decoded text: " The", " is" and "." go, whatever their ids
    assert select_tokens(LLR, strategy="joint", tokens=TOKENS, drop_stopwords=True) == [1, 3]


def test_filler_detection_on_text():
    assert is_filler(" the") and is_filler(".") and is_filler(" ") and is_filler("Is")
    assert not is_filler(" red") and not is_filler("circle")


def test_keywords_maps_spans_to_tokens():
    pytest.importorskip("yake")
    chosen = select_tokens(LLR, strategy="keywords", tokens=TOKENS, answer="The circle is red.")
    assert chosen == [1, 3]


def test_errors():
    with pytest.raises(InputError):
        select_tokens(LLR, strategy="magic")
    with pytest.raises(InputError):
        select_tokens(LLR, strategy="joint", drop_stopwords=True)
