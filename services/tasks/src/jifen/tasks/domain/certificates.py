"""A volunteer's service certificate (issue 21, part 2): its verification code and its
figures. Pure; the PDF is drawn in ``jifen.tasks.certificate_pdf``."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

# 20 characters of Crockford's base32 (100 bits): read aloud and typed without confusion
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE = re.compile(r"^JF-[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}$")


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "JF-" + "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def figures(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Jobs, service minutes and points of a record's lines (its verified completions)."""
    lines = list(lines)
    return {
        "jobs": len(lines),
        "service_minutes": sum(int(line["minutes"]) for line in lines),
        "points": sum(int(line["points"]) for line in lines),
    }
