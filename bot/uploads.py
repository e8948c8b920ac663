"""Files from the H5 page (photos, voice, video): reading a multipart upload under a hard cap,
finding the report a file belongs to, and what the citizen is told when one is refused.

The bytes are checked and kept by `store.incidents`; here is only what HTTP needs around that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from aiohttp import BodyPartReader, hdrs, web
from rasa.core.tracker_store import TrackerStore

from actions.reporting import FORM
from store.citizens import conversation_key
from store.incidents import ATTACHMENT_LIMITS, ATTACHMENT_TYPES, IncidentBook

_MB = 1024 * 1024
KIND_NAMES = {"image": "照片", "voice": "语音", "video": "视频"}
_KIND_OF_TOP_TYPE = {"image": "image", "audio": "voice", "video": "video"}
# What a citizen calls these formats (file extensions), for the "what is accepted" message.
_FORMAT_NAMES = {
    "image/jpeg": "JPG",
    "audio/mpeg": "MP3",
    "audio/mp4": "M4A",
    "video/quicktime": "MOV",
}
# The largest file we keep plus room for the multipart framing and the sender field: a
# request beyond it is refused before a byte of it is read.
MAX_REQUEST_BYTES = max(ATTACHMENT_LIMITS.values()) + 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8
_CHUNK = 64 * 1024


class UploadRefused(Exception):
    """An upload we answer with an error instead of keeping: HTTP status, code, Chinese text."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    sender: str | None  # as sent: the caller checks it exactly as /api/chat does
    kind: str
    mime: str
    data: bytes


def kind_of(mime: str) -> str | None:
    """image/* → image, audio/* → voice, video/* → video; None for anything else."""
    return _KIND_OF_TOP_TYPE.get(mime.split("/", 1)[0].strip().lower())


def limit_mb(kind: str) -> int:
    return ATTACHMENT_LIMITS[kind] // _MB


def accepted() -> str:
    """照片（GIF、JPG、PNG、WEBP）、语音（…）或视频（…）, from the store's own lists."""
    groups = []
    for kind, noun in KIND_NAMES.items():
        names = sorted(
            _FORMAT_NAMES.get(mime, mime.split("/")[1].upper()) for mime in ATTACHMENT_TYPES[kind]
        )
        groups.append(f"{noun}（{'、'.join(names)}）")
    return "、".join(groups[:-1]) + "或" + groups[-1]


def refused(reason: str, kind: str | None) -> UploadRefused:
    """The answer to a file refused for `reason` (see `store.incidents.AttachmentRejected`)."""
    noun = KIND_NAMES.get(kind or "", "文件")
    if reason == "too_large" and kind in ATTACHMENT_LIMITS:
        return UploadRefused(
            413, reason, f"{noun}太大（最大{limit_mb(kind)}MB），请换一个小一些的，或用文字说明。"
        )
    if reason == "too_large":
        limits = "，".join(f"{KIND_NAMES[k]}最大{limit_mb(k)}MB" for k in KIND_NAMES)
        return UploadRefused(413, reason, f"文件太大（{limits}），请换一个小一些的。")
    if reason == "bad_type":
        return UploadRefused(415, reason, f"不支持这种文件。可以发送{accepted()}。")
    if reason == "empty":
        return UploadRefused(400, reason, f"{noun}是空的，请重新选择。")
    if reason == "bad_content":
        return UploadRefused(400, reason, f"这个文件不是有效的{noun}，请重新选择。")
    return UploadRefused(400, reason, "文件没有发送成功，请重新选择。")


def _not_multipart() -> UploadRefused:
    return UploadRefused(400, "not_multipart", "上传格式不正确，请用页面上的按钮重新发送。")


async def _read_capped(part: BodyPartReader, limit: int) -> bytes | None:
    """The part's bytes, or None as soon as there are more than `limit` (the rest is left)."""
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data.extend(chunk)
        if len(data) > limit:
            return None
    return bytes(data)


async def read_upload(request: web.Request) -> Upload:
    """The `sender` and `file` fields of a multipart/form-data request, in either order.

    Read chunk by chunk: a file is given up on as soon as it passes its kind's limit, so a
    huge upload costs neither memory nor time (aiohttp's client_max_size only guards
    `request.read()`, which is not used here). Raises `UploadRefused`.
    """
    if request.content_type != "multipart/form-data":
        raise _not_multipart()
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise refused("too_large", None)
    sender: str | None = None
    file: tuple[str, str, bytes] | None = None
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):  # a nested multipart: no client sends it
                raise _not_multipart()
            if part.name == "file" and file is None:
                mime = part.headers.get(hdrs.CONTENT_TYPE, "")
                kind = kind_of(mime)
                if kind is None:
                    raise refused("bad_type", None)
                data = await _read_capped(part, ATTACHMENT_LIMITS[kind])
                if data is None:
                    raise refused("too_large", kind)
                file = (kind, mime, data)
                continue
            value = await _read_capped(part, MAX_FIELD_BYTES)
            if value is None:
                raise refused("too_large", None)
            if part.name == "sender" and sender is None:
                sender = value.decode("utf-8", errors="replace")
        else:
            raise _not_multipart()
    except (ValueError, AssertionError, RuntimeError) as exc:
        # How aiohttp's multipart reader reports a malformed body (bad boundary, truncation).
        raise _not_multipart() from exc
    if file is None:
        raise UploadRefused(400, "missing_file", "没有收到文件，请重新选择。")
    return Upload(sender, *file)


class Destination(NamedTuple):
    number: str | None  # the incident to attach to; None: keep the file loose for now
    reporting: bool  # a report is being filled in (its incident may not exist yet)


async def destination(
    tracker_store: TrackerStore, book: IncidentBook, channel: str, sender_id: str
) -> Destination:
    """Where a file sent now belongs: the report being filled in, else the newest open one.

    While the report form runs and no incident exists yet, the file waits loose:
    `sync_incident` links it when the incident is created. An older open report does not
    take it, as the citizen is talking about the new one.
    """
    tracker = await tracker_store.retrieve(conversation_key(channel, sender_id))
    if tracker is not None:
        number = tracker.get_slot("incident_number")
        reporting = tracker.active_loop_name == FORM
        if number or reporting:
            return Destination(str(number) if number else None, reporting)
    newest = await book.for_reporter(channel, sender_id, include_drafts=True, limit=1)
    if newest and newest[0].is_open:
        return Destination(newest[0].number, False)
    return Destination(None, False)


def confirmation(kind: str, where: Destination) -> str:
    """What the citizen reads once the file is kept."""
    noun = KIND_NAMES[kind]
    if where.number:
        return f"{noun}已收到，已附在报警{where.number}中。"
    if where.reporting:
        return f"{noun}已收到，提交报警时会一并附上。"
    return f"{noun}已收到，报警时会一并附上。请告诉我发生了什么、在哪里。"
