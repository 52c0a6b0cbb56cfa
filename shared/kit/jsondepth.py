"""How deep a JSON text nests, found without parsing it (so without recursion).

Python's `json` parser recurses once per nested array or object and raises RecursionError
(a 500) around a thousand levels deep: text from outside (a webhook body, a cursor) is checked
here first and refused when it nests deeper than its format ever does. Pure.
"""

from __future__ import annotations

import re

# The tokens that matter for nesting: brackets, and strings (whose brackets do not count).
_TOKEN = re.compile(rb'[\[\]{}"]')
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPENERS = frozenset(b"[{")


def nests_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` opens more than `limit` arrays/objects inside each other.

    One pass, no recursion, strings skipped whole; text that is not JSON is left for the
    parser to refuse (an unterminated string ends the scan)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to nest that deep (every real event): no scan
    depth = 0
    pos = 0
    while (token := _TOKEN.search(body, pos)) is not None:
        start = token.start()
        char = body[start]
        if char == 0x22:  # '"'
            string = _STRING.match(body, start)
            if string is None:
                return False
            pos = string.end()
            continue
        if char in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
        pos = start + 1
    return False
