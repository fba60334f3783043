"""Text a person or a caller gave: shortened before it is echoed, refused when it hides control characters.

A message that repeats its input must not repeat a megabyte of it (an error answer, a log line, a
diagnostic), so inputs are shown as an excerpt. Names, reasons and titles are read by people in
terminals, tables and audit exports; a NUL or an escape sequence in them truncates or rewrites
what the reader sees, so they are refused where such text enters.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PRINTABLE_NOT_BLANK = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
"""A pattern (JSON Schema and pydantic alike): one line with no control characters, not only spaces."""


def excerpt(text: str, limit: int = 60) -> str:
    """`text` shortened for a message: a message must never echo a huge input back."""
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text):,} characters)"


def control_character(text: str) -> str | None:
    """The first control character in `text` (as `U+0000`), or None."""
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"
