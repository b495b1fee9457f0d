"""Release notifications in Slack incoming-webhook format; without SLACK_WEBHOOK_URL, log only."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import requests

log = logging.getLogger(__name__)

_ICONS = {"promote": ":rocket:", "rollback": ":rewind:", "gate_failed": ":no_entry:", "deployed": ":seedling:",
          "inconclusive": ":hourglass:", "failed": ":x:"}


def slack_payload(event: str, title: str, text: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message: fallback `text` plus Block Kit `blocks`."""
    icon = _ICONS.get(event, ":information_source:")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {text}"[:3000]}},
    ]
    items = [{"type": "mrkdwn", "text": f"*{key}*\n{value}"[:2000]} for key, value in (fields or {}).items()]
    for start in range(0, len(items), 10):  # Slack allows at most 10 fields per section
        blocks.append({"type": "section", "fields": items[start:start + 10]})
    return {"text": f"{icon} {title}: {text}"[:4000], "blocks": blocks}


def notify(webhook_url: str, payload: Mapping[str, Any], timeout_seconds: float = 5.0) -> bool:
    """POST the payload to the webhook; True when it was accepted. Never raises."""
    log.info("release notification %s", json.dumps(payload.get("text")))
    if not webhook_url:
        return False
    try:
        response = requests.post(webhook_url, json=dict(payload), timeout=timeout_seconds)
    except requests.RequestException as exc:
        log.warning("slack notification failed: %s", exc)
        return False
    if response.status_code >= 300:
        log.warning("slack notification rejected: %s %s", response.status_code, response.text[:200])
        return False
    return True
