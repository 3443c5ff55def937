"""Visually relevant answer tokens (paper Sec. 3.2, Eq. 6-7).

``LLR_t = log P(a_t | a_<t, I, Q) - log P(a_t | a_<t, I~, Q)`` with ``I~`` the baseline
image; selected tokens ``K = {t : LLR_t > alpha}``. The explained score is
``f(image) = sum_{t in K} log P(a_t | a_<t, image, Q)``.

Strategies: ``llr`` (default), ``joint`` (all answer tokens, paper Table 3) and
``keywords`` (YAKE keywords of the answer mapped to token spans; needs ``pip install
vlm-focus[keywords]``). Filters, off by default: drop the first answer token (the
reference code does) and drop stop-words. Stop-words are judged on each token's
*decoded text*, never on token ids, so they work with any tokenizer.

Example::

    >>> import torch
    >>> select_tokens(torch.tensor([0.1, 2.5, 0.0, 1.7]), alpha=1.0)
    [1, 3]
"""

from __future__ import annotations

import re

import torch

from .errors import InputError

STRATEGIES = ("llr", "joint", "keywords")

STOPWORDS = frozenset(
    """a an the is are was were be been being am of to in on at by for with from as and or but
    not no nor so than too very it its this that these those there here what which who whom
    whose how why when where i you he she we they me him her us them my your his our their
    do does did has have had will would can could shall should may might must also just
    some any all each both either neither one image picture photo""".split()
)


def _word(text: str) -> str:
    return re.sub(r"[^\w]", "", text.lower())


def is_filler(text: str) -> bool:
    """A token whose decoded text is punctuation, whitespace or a stop-word."""
    w = _word(text)
    return not w or w in STOPWORDS


def select_tokens(
    llr: torch.Tensor,
    alpha: float = 1.0,
    strategy: str = "llr",
    tokens: list[str] | None = None,
    answer: str | None = None,
    drop_first: bool = False,
    drop_stopwords: bool = False,
) -> list[int]:
    """Indices of the answer tokens to explain.

    ``tokens`` (each token's decoded text) is needed for ``drop_stopwords`` and
    ``keywords``; ``answer`` (the full text) for ``keywords``.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown token strategy {strategy!r}; choose from {STRATEGIES}")
    n = len(llr)
    if strategy == "llr":
        chosen = [t for t in range(n) if float(llr[t]) > alpha]
    elif strategy == "joint":
        chosen = list(range(n))
    else:
        if tokens is None:
            raise InputError("the keywords strategy needs the decoded tokens")
        chosen = keyword_tokens(tokens, answer or "".join(tokens))
    if drop_first:
        chosen = [t for t in chosen if t != 0]
    if drop_stopwords:
        if tokens is None:
            raise InputError("drop_stopwords needs the decoded tokens")
        chosen = [t for t in chosen if not is_filler(tokens[t])]
    return chosen


def keyword_tokens(tokens: list[str], answer: str, top: int = 5) -> list[int]:
    """Tokens overlapping the YAKE keywords of ``answer`` (character spans of the tokens)."""
    try:
        import yake
    except ImportError:
        raise InputError("the keywords strategy needs YAKE: pip install 'vlm-focus[keywords]'") from None
    text = "".join(tokens)
    keywords = [k for k, _ in yake.KeywordExtractor(lan="en", n=2, top=top).extract_keywords(answer)]
    spans = []
    for k in keywords:
        for m in re.finditer(re.escape(k), text, flags=re.IGNORECASE):
            spans.append((m.start(), m.end()))
    chosen, pos = [], 0
    for t, tok in enumerate(tokens):
        start, end = pos, pos + len(tok)
        pos = end
        if any(s < end and start < e for s, e in spans) and _word(tok):
            chosen.append(t)
    return chosen
