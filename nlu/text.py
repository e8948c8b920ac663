"""Pure text helpers for Chinese user input: Simplified script, half-width ASCII, tidy spaces.

Two flavours:

* `normalise` is for storing/displaying/classifying a message: it may change the length.
* `fold_for_matching` keeps every character in place (same length, same offsets), so rules can
  match on tidy text while reporting offsets into the text the user actually sent.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from opencc import OpenCC

MAX_CHARS = 2000
"""Longer messages are cut: nobody types an emergency that long, and it bounds the work."""

# Full-width forms that are ordinary Chinese punctuation: keep them as the writer meant them.
_KEEP_FULL_WIDTH = frozenset("！，：；？（）")
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
_SPACES = ("\u00a0", "\u1680", "\u202f", "\u205f", "\u3000", *map(chr, range(0x2000, 0x200B)))
# Blocks where NFKC turns a character into one ASCII letter/digit (①→1, Ⅷ is skipped: 4 chars).
_NFKC_BLOCKS = ((0x2070, 0x209F), (0x2150, 0x218F), (0x2460, 0x24FF), (0x2776, 0x2793))

_converter = OpenCC("t2s")


def _ascii_nfkc(char: str) -> str | None:
    """The single ASCII character NFKC folds `char` to, if there is one."""
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 and folded.isascii() and folded.isprintable() else None


def _build_tables() -> tuple[dict[int, str | None], dict[int, str]]:
    """Translation tables: one for `normalise` (may delete) and one for matching (1:1)."""
    normalise: dict[int, str | None] = {}
    fold: dict[int, str] = {}
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII block
        ascii_char = chr(code - 0xFEE0)
        fold[code] = ascii_char
        if chr(code) not in _KEEP_FULL_WIDTH:
            normalise[code] = ascii_char
    for first, last in _NFKC_BLOCKS:
        for code in range(first, last + 1):
            ascii_char = _ascii_nfkc(chr(code))
            if ascii_char is not None:
                normalise[code] = fold[code] = ascii_char
    for space in _SPACES:
        normalise[ord(space)] = fold[ord(space)] = " "
    for char in _ZERO_WIDTH:
        normalise[ord(char)] = None
        fold[ord(char)] = " "
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]:
        if code == 0x0A:
            continue
        normalise[code] = " " if code == 0x09 else None
        fold[code] = " "
    for code in range(0xD800, 0xE000):  # lone surrogates cannot be encoded for OpenCC
        normalise[code] = None
        fold[code] = " "
    return normalise, fold


_NORMALISE_TABLE, _FOLD_TABLE = _build_tables()
_HSPACE_RUN = re.compile(r"[ \t]+")
_NEWLINE_RUN = re.compile(r" ?\n[ \n]*")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_SPACE_BETWEEN_HAN = re.compile(f"(?<=[{_HAN}]) (?=[{_HAN}])")
_ONE_HAN = re.compile(f"[{_HAN}]")


def to_simplified(text: str) -> str:
    """Traditional → Simplified; unchanged if OpenCC refuses the text."""
    try:
        return _converter.convert(text)
    except Exception:  # a converter failure must never lose the message
        return text


@lru_cache(maxsize=8192)
def _simplified_char(char: str) -> str:
    converted = to_simplified(char)
    return converted if len(converted) == 1 else char


def normalise(text: str) -> str:
    """Tidy a message for the NLU: Simplified script, half-width letters/digits, single spaces.

    Newlines survive (addresses are often written on their own line); control characters and
    zero-width characters do not; the result is at most MAX_CHARS characters long.
    """
    if not isinstance(text, str) or not text:
        return ""
    text = text[: MAX_CHARS * 2].replace("\r\n", "\n").replace("\r", "\n")
    text = to_simplified(text.translate(_NORMALISE_TABLE))
    text = _HSPACE_RUN.sub(" ", text)
    text = _NEWLINE_RUN.sub("\n", text)
    return join_spaced_characters(text.strip())[:MAX_CHARS]


def join_spaced_characters(text: str) -> str:
    """'我 家 门 被 撬 东西 没' → '我家门被撬东西没'.

    Some users (often deaf or typing on a keypad) put a space after every character or two;
    words and cue phrases are then split apart. When most space-separated pieces are a
    single Chinese character, the spaces between Chinese characters go; spaces between
    phrases in ordinary text ('电瓶车没了 锁也不见了') and around Latin words stay.
    """
    pieces = text.split()
    single = sum(1 for piece in pieces if _ONE_HAN.fullmatch(piece))
    if len(pieces) < 2 or single * 2 < len(pieces) or (len(pieces) < 4 and single < len(pieces)):
        return text
    return "\n".join(_SPACE_BETWEEN_HAN.sub("", line) for line in text.split("\n"))


def fold_for_matching(text: str) -> str:
    """Same-length copy of `text` in Simplified script with half-width ASCII and plain spaces.

    Offsets in the result are offsets in `text`, which is what entity extraction reports.
    """
    if not text:
        return ""
    folded = text.translate(_FOLD_TABLE)
    simplified = to_simplified(folded)
    if len(simplified) == len(folded):
        return simplified
    return "".join(map(_simplified_char, folded))  # a phrase rule changed the length
