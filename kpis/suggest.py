"""Nearest-name suggestions, so every refusal can point at the valid choice the user meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, choices: Iterable[str]) -> str | None:
    """The known name closest to `name`, or None when nothing is reasonably close."""
    options = sorted(set(choices))
    lowered = name.strip().lower()
    for option in options:
        if option.lower() == lowered:
            return option
    prefixed = [o for o in options if o.startswith(lowered)] if len(lowered) >= 3 else []
    if len(prefixed) == 1:
        return prefixed[0]
    matches = difflib.get_close_matches(lowered, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A sentence fragment like ' Did you mean `cpl`?' or '' when there is no close choice."""
    guess = nearest(name, choices)
    return f" Did you mean `{guess}`?" if guess else ""
