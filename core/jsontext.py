"""JSON from clients (socket frames, REST bodies), parsed defensively.

- Nesting is capped *before* parsing (MAX_DEPTH): a frame of 64 KB can nest 30,000 levels deep,
  which makes the parser raise instead of answering.
- Text that PostgreSQL cannot store is refused with `invalid`: the NUL character and unpaired
  UTF-16 surrogates (valid JSON escapes, `\\u0000`, `\\ud800`). Left in, one such string failed
  the whole statement of a batch of sends, other people's messages included.

Both checks cost a C-speed scan of the text for the common case: the exact walk runs only when
the cheap scan finds something that could be a problem.
"""

import json
import re
from typing import Any

from core.errors import ApplicationError, InvalidInput

MAX_DEPTH = 32

# A NUL escape or a surrogate escape (a valid pair is fine; a lone one is not).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF][0-9a-fA-F]{2})")
_BAD_TEXT = "Text cannot contain NUL characters or unpaired surrogates."


class InvalidJson(ApplicationError):
    code = "invalid_json"
    status = 400
    message = "The body is not valid JSON."


def _depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, strings skipped."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _storable(value: Any) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


def loads(text: str | bytes) -> Any:
    """Parse untrusted JSON: InvalidJson for bad or too deeply nested JSON, InvalidInput (with the
    offending top-level fields) for text that cannot be stored."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise InvalidJson("The body is not UTF-8.") from None
    if (text.count("[") + text.count("{") > MAX_DEPTH) and _depth(text) > MAX_DEPTH:
        raise InvalidJson(f"JSON may nest at most {MAX_DEPTH} levels deep.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidJson() from None
    if _SUSPECT_ESCAPE.search(text) and not _storable(value):
        fields = {"non_field_errors": [_BAD_TEXT]}
        if isinstance(value, dict) and all(_storable(key) for key in value):
            fields = {key: [_BAD_TEXT] for key, item in value.items() if not _storable(item)}
        raise InvalidInput(_BAD_TEXT, fields=fields)
    return value


def storable_text(value: str, *, field: str) -> str:
    """`value` if PostgreSQL can store it, else InvalidInput naming `field` (for services)."""
    if not _storable(value):
        raise InvalidInput(_BAD_TEXT, fields={field: [_BAD_TEXT]})
    return value
