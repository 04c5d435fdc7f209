""""Did you mean ...?" suggestions for misspelt keys, names and types."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6


def did_you_mean(word: object, candidates: Iterable[object], cutoff: float = CUTOFF) -> str | None:
    """The candidate closest to ``word``, or None when nothing is close enough.

    A case-insensitive exact match wins; otherwise :mod:`difflib` picks the best match
    (compared case-insensitively) whose similarity ratio is at least ``cutoff``.
    Non-string words and candidates are ignored.
    """
    if not isinstance(word, str) or not word:
        return None
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        if isinstance(candidate, str) and candidate != word:
            by_lower.setdefault(candidate.lower(), candidate)
    if not by_lower:
        return None
    lowered = word.lower()
    if lowered in by_lower:
        return by_lower[lowered]
    matches = difflib.get_close_matches(lowered, list(by_lower), n=1, cutoff=cutoff)
    return by_lower[matches[0]] if matches else None


def mean_phrase(word: object, candidates: Iterable[object], cutoff: float = CUTOFF) -> str | None:
    """``"did you mean 'x'?"`` for the closest candidate, or None."""
    match = did_you_mean(word, candidates, cutoff)
    return f"did you mean {match!r}?" if match is not None else None
