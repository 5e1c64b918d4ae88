"""JSON from strangers: bounded nesting, finite numbers only.

A body nested thousands of levels deep overflows the parser's stack (a C-stack crash once a library
has raised the recursion limit) or PostgreSQL's ("stack depth limit exceeded"); NaN, Infinity and
1e400 parse in Python but jsonb refuses them. Both are refused here, before anything is stored.
"""

from __future__ import annotations

import json
import math
import re
import sys
from decimal import Decimal
from typing import Any

# Deeper than any event Stripe, One.com or a chain watcher sends, and far below every stack.
MAX_JSON_DEPTH = 64
# The limit a web process runs with: Python's default. py_ecc (under web3) raises it to 100,000 on
# import, which lets a deep body overflow the C stack and kill the worker instead of raising.
WEB_RECURSION_LIMIT = 1000

# An escape pair is one token, so an escaped quote never ends a string.
_TOKENS = re.compile(rb'\\.|[\[\]{}"]', re.DOTALL)


class JsonRefused(ValueError):
    """Valid-looking JSON we will not take; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def json_depth(raw: bytes | str, *, stop_above: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays and objects, read without parsing (strings skipped).

    Stops counting once past `stop_above`: the answer is then only "too deep"."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if b"[" not in data and b"{" not in data:
        return 0
    depth = deepest = 0
    in_string = False
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or token[0] == 0x5C:
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JsonRefused("invalid_json", f"{name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("invalid_json", f"{text[:20]} is out of range for a JSON number.")
    return value


def _finite_decimal(text: str) -> Decimal:
    value = Decimal(text)
    # 1e400 is a finite Decimal, but not one jsonb (or any float-based client) can hold.
    if not math.isfinite(float(value)):
        raise JsonRefused("invalid_json", f"{text[:20]} is out of range for a JSON number.")
    return value


def loads(raw: bytes | str, *, decimals: bool = False) -> Any:
    """json.loads for bodies from the network. Raises JsonRefused (a ValueError) for too deep or
    non-finite input and ValueError for anything that is not JSON."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise JsonRefused("json_too_deep", f"The body is nested deeper than {MAX_JSON_DEPTH} levels.")
    try:
        return json.loads(raw, parse_constant=_refuse_constant,
                          parse_float=_finite_decimal if decimals else _finite_float)
    except RecursionError:
        raise JsonRefused("json_too_deep", "The body is nested too deeply.") from None


def recursion_limit_restore() -> None:
    """Undo what an imported library did to the recursion limit (see WEB_RECURSION_LIMIT)."""
    if sys.getrecursionlimit() > WEB_RECURSION_LIMIT:
        sys.setrecursionlimit(WEB_RECURSION_LIMIT)
