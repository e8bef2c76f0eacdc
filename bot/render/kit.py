"""The Block Kit pieces every renderer builds with: one public set, within Slack's limits.

Limits (50 blocks, 3,000 characters a section, 75 a button or option, 24 a modal title,
3,000 of private metadata) are kept here by construction, so no renderer has to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
Block = dict[str, Any]
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
MODAL_TITLE_LIMIT = 24


def plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit]}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, 150)}


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> Block:
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id}
    if value:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    return element


def actions(*elements: Block) -> Block:
    return {"type": "actions", "elements": list(elements)}


def option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": plain(text or value), "value": value}


def select(block_id: str, label: str, options: Sequence[dict[str, Any]], initial: int = 0) -> Block:
    """A required static select (an input block), its `initial`-th option chosen."""
    return {"type": "input", "block_id": block_id, "label": plain(label, 2000),
            "element": {"type": "static_select", "action_id": "value", "options": list(options),
                        "initial_option": options[initial]}}


def sections(lines: Iterable[str], limit: int = SECTION_LIMIT) -> list[Block]:
    """Lines packed into as few sections as fit the per-section character limit."""
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        if chunk and len(chunk) + 1 + len(line) > limit:
            blocks.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line[:limit]
    if chunk:
        blocks.append(section(chunk))
    return blocks


def message(text: str, blocks: list[Block] | None = None, **extra: Any) -> Message:
    """A message body with its plain-text fallback (notifications, screen readers)."""
    body: Message = {"text": text, "blocks": (blocks or [section(text)])[:MAX_BLOCKS]}
    body.update(extra)
    return body


def modal(callback_id: str, title: str, blocks: list[Block], metadata: dict[str, Any],
          submit: str = "Save") -> dict[str, Any]:
    return {
        "type": "modal", "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE_LIMIT),
        "submit": plain(submit, MODAL_TITLE_LIMIT), "close": plain("Cancel", MODAL_TITLE_LIMIT),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": blocks[:100],
    }


def error(text: str) -> Message:
    """A problem the user can fix: what is wrong and how to fix it."""
    return message(f":warning: {text}")


def apology(error_id: str) -> Message:
    return message(
        "Sorry, something went wrong on our side and nothing was changed. "
        f"If it keeps happening, give your admin this error id: `{error_id}`."
    )


def busy() -> Message:
    return message(":hourglass_flowing_sand: The database is not answering right now, so nothing "
                   "was stored. Please try again in a minute.")


# -- what a command's answer asks the front end to do ------------------------------------------


@dataclass(frozen=True)
class Modal:
    """Open this view (it needs the request's trigger id)."""

    view: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """Share a file in the asking conversation with a comment, then tell the asker `then`."""

    filename: str
    title: str
    content: bytes
    comment: str | None = None
    then: Message = field(default_factory=dict)


#: a command's answer: a message only to the asker, a form to open, or a file to share
Reply = Message | Modal | Upload
