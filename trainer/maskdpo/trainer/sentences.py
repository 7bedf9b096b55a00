"""The one sentence splitter used everywhere (judge, token masks, metrics).

It wraps pysbd (rule-based; handles initials, "U.S.", "e.g.", numbered lists) and returns character spans
into the original text, trimmed of surrounding whitespace. ``split_on_semicolon`` is the ANAH-style option
that also ends a sentence at ";". Every result records :data:`SPLITTER_ID` so scores stay comparable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from maskdpo.trainer.labels import Span

SPLITTER_NAME = "pysbd"
SPLITTER_VERSION = "0.3.4"


@dataclass(frozen=True, slots=True)
class SplitterConfig:
    """Options of the sentence splitter; part of every score's identity."""

    split_on_semicolon: bool = False
    language: str = "en"

    @property
    def identity(self) -> str:
        """A stable string naming the splitter, its version and its options, e.g. ``pysbd-0.3.4+semicolon``."""
        suffix = "+semicolon" if self.split_on_semicolon else ""
        return f"{SPLITTER_NAME}-{SPLITTER_VERSION}{suffix}"


class _Segmenter(Protocol):
    """What this module uses of ``pysbd.Segmenter`` (pysbd ships no type information)."""

    def segment(self, text: str) -> Sequence[str]: ...


@functools.lru_cache(maxsize=4)
def _segmenter(language: str) -> _Segmenter:
    import pysbd

    segmenter: _Segmenter = pysbd.Segmenter(language=language, clean=False)
    return segmenter


_SEMICOLON = re.compile(r";\s*")


def split_sentences(text: str, config: SplitterConfig | None = None) -> list[Span]:
    """Split ``text`` into sentence spans, in order, non-overlapping, each trimmed of whitespace.

    Empty or whitespace-only text gives no spans. The spans always index the original string, so
    ``text[span.start:span.end]`` is the sentence exactly.
    """
    config = config or SplitterConfig()
    if not text.strip():
        return []
    spans: list[Span] = []
    cursor = 0
    for piece in _segmenter(config.language).segment(text):
        stripped = piece.strip()
        if not stripped:
            continue
        start = text.find(stripped, cursor)
        if start < 0:  # pysbd altered the text (it should not with clean=False); fall back to the rest
            start = cursor
            stripped = text[cursor:].strip()
            start = text.find(stripped, cursor)
        end = start + len(stripped)
        spans.extend(_split_semicolons(text, start, end) if config.split_on_semicolon else [Span(start, end)])
        cursor = end
    return spans


def _split_semicolons(text: str, start: int, end: int) -> list[Span]:
    out: list[Span] = []
    piece_start = start
    for match in _SEMICOLON.finditer(text, start, end):
        if text[piece_start : match.start() + 1].strip():
            out.append(Span(piece_start, match.start() + 1))
        piece_start = match.end()
    if piece_start < end and text[piece_start:end].strip():
        out.append(Span(piece_start, end))
    return out
