"""The 12345 work-order system telling us what became of a work order: verifying and reading
its signed status callback, and what each status means for our incident. Pure: no I/O.

Wire format (`POST /api/callbacks/12345`):

* headers `X-Timestamp: <unix seconds>` and `X-Signature: <hex HMAC-SHA256>` (optionally
  prefixed `sha256=`) computed with WORKORDER_CALLBACK_SECRET over
  `<timestamp>.<raw body bytes>`. Binding the timestamp into the signature makes the
  replay window (5 minutes either way) mean something; a replay inside it is harmless
  because applying a callback is idempotent.
* body, a JSON object: `工单编号` (or `number`): our incident number; `status` (or `状态`):
  已受理 | 办理中 | 已办结 | 退回; for 退回 `reason` (or `退回原因`): 职能不符 | 属地不符;
  optional `comment` (or `说明`): their remark, kept sealed on the timeline.

Mapping onto our statuses (store.incidents), decided here:

| 12345 | incident status | why |
|---|---|---|
| 已受理 | unchanged (`transferred_12345`, 已转12345) + note | accepted is not yet worked on |
| 办理中 | `in_progress` (处理中) | a department works on it |
| 已办结 | `closed` (已办结) | done; later callbacks only add notes |
| 退回 | `received` (back in the call-takers' queue) + note with the reason | not theirs: a person decides where it goes next (another route, another district) |

A status that would move the incident backwards (已受理 after 办理中) only adds a note.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.incidents import (
    CLOSED,
    FINAL_STATUSES,
    IN_PROGRESS,
    RECEIVED,
    TRANSFERRED_12345,
)

REPLAY_WINDOW_S = 300
MAX_COMMENT_CHARS = 500
ACCEPTED, WORKING, DONE, RETURNED = "已受理", "办理中", "已办结", "退回"
STATUSES = (ACCEPTED, WORKING, DONE, RETURNED)
RETURN_REASONS = ("职能不符", "属地不符")
ACTOR = "12345"

# How far along each of our statuses is, to refuse moving backwards.
_PROGRESS = {RECEIVED: 0, TRANSFERRED_12345: 1, IN_PROGRESS: 2, CLOSED: 3}
_TARGET = {ACCEPTED: TRANSFERRED_12345, WORKING: IN_PROGRESS, DONE: CLOSED}


class CallbackRejected(ValueError):
    """`status` is the HTTP status to answer (401, 403, 400); `code` is for the sender."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class WorkOrderUpdate:
    number: str
    status: str
    reason: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What to do with the incident: a new status or None, the timeline note, and what to
    tell the citizen (None: nothing new for them)."""

    status: str | None
    note: str
    citizen_text: str | None


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, now_s: float) -> None:
    """Raise `CallbackRejected` (401 missing headers, 403 bad or stale signature)."""
    timestamp = headers.get("X-Timestamp", "")
    signature = headers.get("X-Signature", "").strip()
    if not timestamp or not signature:
        raise CallbackRejected(401, "unsigned", "X-Timestamp and X-Signature are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise CallbackRejected(403, "bad_timestamp", "X-Timestamp must be unix seconds")
    signature = signature.removeprefix("sha256=").lower()
    if not hmac.compare_digest(signature, sign(secret, timestamp, body)):
        raise CallbackRejected(403, "bad_signature", "signature does not match")
    if abs(now_s - int(timestamp)) > REPLAY_WINDOW_S:
        raise CallbackRejected(403, "stale", f"timestamp outside the {REPLAY_WINDOW_S} s window")


def _field(data: Mapping[str, Any], *names: str) -> Any:  # noqa: ANN401 - JSON
    for name in names:
        if name in data and data[name] not in (None, ""):
            return data[name]
    return None


def parse(body: bytes) -> WorkOrderUpdate:
    """The update in a verified body; raises `CallbackRejected` 400 for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CallbackRejected(400, "invalid_json", "body is not UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, "invalid_json", "body is not a JSON object")
    number = _field(data, "工单编号", "number")
    if not isinstance(number, str) or not number.isdigit() or len(number) > 16:
        raise CallbackRejected(400, "bad_number", "工单编号 must be our incident number")
    status = _field(data, "status", "状态")
    if status not in STATUSES:
        raise CallbackRejected(400, "bad_status", f"status must be one of {'/'.join(STATUSES)}")
    reason = _field(data, "reason", "退回原因")
    if status == RETURNED and reason not in RETURN_REASONS:
        raise CallbackRejected(400, "bad_reason", f"退回 needs reason {'/'.join(RETURN_REASONS)}")
    if status != RETURNED:
        reason = None
    comment = _field(data, "comment", "说明")
    if comment is not None and not isinstance(comment, str):
        raise CallbackRejected(400, "bad_comment", "comment must be text")
    comment = (comment.strip()[:MAX_COMMENT_CHARS] or None) if comment else None
    return WorkOrderUpdate(number, status, reason, comment)


def note_for(update: WorkOrderUpdate) -> str:
    """The timeline note; the same update always gives the same note (idempotency key)."""
    note = f"12345回复：{update.status}"
    if update.reason:
        note += f"（{update.reason}）"
    if update.comment:
        note += f"。说明：{update.comment}"
    return note


def _citizen_text(update: WorkOrderUpdate, number: str) -> str:
    head = f"您的报警（编号{number}）"
    if update.status == ACCEPTED:
        return head + "已由12345市民热线受理，将转相关部门办理。"
    if update.status == WORKING:
        return head + "正在由相关部门办理中。"
    if update.status == DONE:
        return head + "12345市民热线已办结。如问题仍未解决，可以再次告诉我们。"
    return head + f"被12345市民热线退回（{update.reason}），我们会重新安排处理，请留意后续消息。"


def outcome(update: WorkOrderUpdate, current: str, last_note: str | None) -> Outcome | None:
    """What `update` does to an incident at `current` whose latest note from 12345 is
    `last_note`; None for a repeat of that same callback (nothing to do). Comparing with the
    latest only, not all, lets a work order that was returned and sent again be accepted
    again."""
    note = note_for(update)
    if note == last_note:
        return None
    text = _citizen_text(update, update.number)
    if current in FINAL_STATUSES:
        return Outcome(None, note, None)  # closed or withdrawn: keep the record, no move
    if update.status == RETURNED:
        return Outcome(RECEIVED, note, text)
    target = _TARGET[update.status]
    if _PROGRESS.get(target, 0) <= _PROGRESS.get(current, 0):
        # e.g. 已受理 arriving after 办理中; or already there by another path
        return Outcome(None, note, text if target == current else None)
    return Outcome(target, note, text)
