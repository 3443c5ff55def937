"""Word wrapping of token runs for matplotlib text, measured in inches.

The overlay figure writes the question and the answer token by token (selected tokens in
another style); these helpers split the runs into words, so sub-word tokens (" circ", "le")
stay together, and place them on lines no wider than the text column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# A run is (text, style); a placed piece is (x_inches, text, style).
_Run = tuple[str, str]
_Placed = tuple[float, str, str]


def printable(text: str) -> str:
    """Token text safe to draw: newlines/tabs kept, other control characters as U+FFFD."""
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in str(text))


def split_runs(runs: Sequence[_Run]) -> list[list[tuple[int, str, str]] | None]:
    """Group runs into words of ``(leading_spaces, core, style)`` pieces; ``None`` = line break.

    A new word starts at a run with leading whitespace, so sub-word tokens (" circ", "le")
    stay together when wrapping.
    """
    words: list[list[tuple[int, str, str]] | None] = []
    current: list[tuple[int, str, str]] = []
    pending_spaces = 0
    for text, style in runs:
        parts = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ").split("\n")
        for i, part in enumerate(parts):
            if i > 0:
                if current:
                    words.append(current)
                    current = []
                words.append(None)
                pending_spaces = 0
            core = part.strip(" ")
            lead = len(part) - len(part.lstrip(" "))
            if not core:
                pending_spaces += len(part)
                continue
            lead += pending_spaces
            if lead and current:
                words.append(current)
                current = []
            current.append((lead, core, style))
            pending_spaces = len(part) - len(part.rstrip(" "))
    if current:
        words.append(current)
    return words


def wrap(runs: Sequence[_Run], max_width: float, measure: Callable[[str, str], float]) -> list[list[_Placed]]:
    """Place runs on lines no wider than ``max_width`` inches (words are not split if avoidable)."""
    space = measure(" ", "normal") or measure("a a", "normal") - measure("aa", "normal")
    lines: list[list[_Placed]] = [[]]
    x = 0.0

    def newline() -> None:
        nonlocal x
        lines.append([])
        x = 0.0

    for word in split_runs(runs):
        if word is None:
            newline()
            continue
        lead = word[0][0] * space if x > 0 else 0.0
        width = sum(measure(core, st) for _, core, st in word) + sum(n * space for n, _, _ in word[1:])
        if x > 0 and x + lead + width > max_width:
            newline()
            lead = 0.0
        if width <= max_width - x - lead:
            x += lead
            for i, (n, core, st) in enumerate(word):
                if i > 0:
                    x += n * space
                lines[-1].append((x, core, st))
                x += measure(core, st)
            continue
        # A word wider than a whole line: break it piece by piece, then character by character.
        for i, (n, core, st) in enumerate(word):
            x += lead if i == 0 else n * space
            chunk = ""
            for ch in core:
                if chunk and x + measure(chunk + ch, st) > max_width:
                    lines[-1].append((x, chunk, st))
                    newline()
                    chunk = ""
                chunk += ch
            if chunk:
                if x > 0 and x + measure(chunk, st) > max_width:
                    newline()
                lines[-1].append((x, chunk, st))
                x += measure(chunk, st)
    return lines


def words(text: str) -> list[str]:
    """Split plain text into runs that keep their leading space (for word wrapping)."""
    out: list[str] = []
    for i, line in enumerate(text.split("\n")):
        if i > 0:
            out.append("\n")
        pieces = line.split(" ")
        out.extend((" " + p if j > 0 else p) for j, p in enumerate(pieces) if p or j == 0)
    return [w for w in out if w]
