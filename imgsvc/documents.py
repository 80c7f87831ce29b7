"""The bounds every door puts on a JSON document a request carries (renderingRule, mosaicRule, geometry, ...).

A document deeper than MAX_DEPTH is refused before anything walks it recursively: Python's json encoder and
protobuf's Struct conversion recurse per level, and the gRPC decoder refuses messages nested past 100 levels (a
Struct level costs it two).  The deepest rendering rule the core accepts (16 nested functions) is 31 levels.
JSON has no NaN or Infinity, and a Struct cannot carry them to the service either (``1e999`` parses as infinity).
"""
from __future__ import annotations

import math

from imgsvc.errors import invalid

MAX_DEPTH = 32


def check(document, parameter: str):
    """``document`` when it nests at most MAX_DEPTH levels and holds finite numbers only; else an error naming the
    parameter.  Iterative, so that a hostile document cannot exhaust the stack."""
    stack = [(document, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise invalid(f"{parameter} holds NaN or Infinity, which JSON numbers cannot be.", parameter=parameter)
        if isinstance(item, (dict, list)):
            if level > MAX_DEPTH:
                raise invalid(f"{parameter} nests objects and arrays more than {MAX_DEPTH} levels deep.",
                              parameter=parameter)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return document
