"""WeChat's push protocol: signatures, the replay window, safe-mode crypto and hostile bodies.

Everything here is pure (no I/O) so the endpoint can be fuzzed cheaply. wechatpy does the
crypto; parsing is ours, with defusedxml, because wechatpy's xmltodict path would hand a
document type declaration to expat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

MAX_FIELD_CHARS = 8192  # no WeChat field comes close; a longer one is not WeChat's


class Refused(Exception):
    """A push we do not process: `status` 403 (not from WeChat) or 400 (not well-formed)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(token: str, *parts: str) -> str:
    """WeChat's SHA-1 over the sorted strings (token, timestamp, nonce[, encrypt])."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode()).hexdigest()


def check_signature(token: str, timestamp: str, nonce: str, given: str) -> None:
    if not hmac.compare_digest(signature(token, timestamp, nonce), given.lower()):
        raise Refused(403, "bad signature")


def check_timestamp(timestamp: str, window_s: float, now: float | None = None) -> None:
    """A push older (or newer) than the window is a replay; window 0 turns the check off."""
    if window_s <= 0:
        return
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(403, "bad timestamp")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > window_s:
        raise Refused(403, "timestamp outside the replay window")


def _flat(root: Element) -> dict[str, str]:
    """The children of <xml> as strings (nested elements, e.g. ScanCodeInfo, flattened)."""
    fields: dict[str, str] = {}
    for child in root.iter():
        if child is root:
            continue
        text = (child.text or "").strip()
        if len(text) > MAX_FIELD_CHARS:
            raise Refused(400, "field too long")
        fields.setdefault(child.tag, text)
    return fields


def parse_xml(body: bytes) -> dict[str, str]:
    """<xml>…</xml> as a flat dict. No DTD, no entities, no external anything."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError) as exc:
        raise Refused(400, f"not well-formed XML ({type(exc).__name__})") from exc
    if root.tag != "xml":
        raise Refused(400, "root element is not <xml>")
    return _flat(root)


def parse_json(body: bytes) -> dict[str, str]:
    """The mini-program's JSON push: one flat object of strings and numbers."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise Refused(400, "not well-formed JSON") from exc
    if not isinstance(data, dict):
        raise Refused(400, "JSON push is not an object")
    fields: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            continue  # nested objects are not fields we act on
        text = str(value)
        if len(text) > MAX_FIELD_CHARS:
            raise Refused(400, "field too long")
        fields[key] = text
    return fields


def parse_body(body: bytes, content_type: str) -> tuple[dict[str, str], str]:
    """(fields, "xml" | "json"), by content type or, failing that, by the first byte."""
    stripped = body.lstrip()
    if "json" in content_type or stripped.startswith(b"{"):
        return parse_json(body), "json"
    return parse_xml(body), "xml"


class SafeMode:
    """Safe (AES) mode: msg_signature covers the ciphertext; replies go back encrypted."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        self._token = token
        self._crypto = WeChatCrypto(token, encoding_aes_key, app_id)

    def decrypt(
        self, fields: dict[str, str], msg_signature: str, timestamp: str, nonce: str
    ) -> str:
        encrypted = fields.get("Encrypt", "")
        if not encrypted:
            raise Refused(400, "safe mode push without Encrypt")
        expected = signature(self._token, timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise Refused(403, "bad msg_signature")
        try:
            return self._crypto.decrypt_message({"Encrypt": encrypted}, expected, timestamp, nonce)
        except InvalidAppIdException as exc:
            raise Refused(403, "encrypted for another app id") from exc
        except InvalidSignatureException as exc:  # pragma: no cover - checked above
            raise Refused(403, "bad msg_signature") from exc
        except Exception as exc:  # broken padding, base64, lengths: signed but not decryptable
            raise Refused(400, f"undecryptable ({type(exc).__name__})") from exc

    def encrypt(self, reply_xml: str, nonce: str, timestamp: str | None = None) -> str:
        return self._crypto.encrypt_message(reply_xml, nonce, timestamp)

    def encrypt_json(self, plaintext: str, nonce: str, timestamp: str) -> dict[str, Any]:
        """The JSON envelope a mini-program in safe mode expects (unused for passive replies)."""
        xml = self.encrypt(plaintext, nonce, timestamp)
        fields = parse_xml(xml.encode())
        return {
            "Encrypt": fields["Encrypt"],
            "MsgSignature": fields["MsgSignature"],
            "TimeStamp": int(timestamp),
            "Nonce": nonce,
        }


@dataclass(frozen=True)
class Inbound:
    """One push, reduced to what the channel acts on."""

    kind: str  # text | location | image | voice | event | other
    openid: str
    to: str
    create_time: str
    fields: dict[str, str]
    body_format: str = "xml"  # or "json" (mini-program option)

    @property
    def event(self) -> str:
        return self.fields.get("Event", "").lower()

    @property
    def dedup_key(self) -> str:
        """MsgId for messages; sender + time (+ event) for events, which carry no MsgId."""
        msg_id = self.fields.get("MsgId") or self.fields.get("MsgID")
        if msg_id:
            return f"msg:{msg_id}"
        return f"evt:{self.openid}:{self.create_time}:{self.event}"


KINDS = {"text", "location", "image", "voice", "event"}


def inbound(fields: dict[str, str], body_format: str = "xml") -> Inbound:
    openid = fields.get("FromUserName", "")
    if not openid:
        raise Refused(400, "push without FromUserName")
    msg_type = fields.get("MsgType", "").lower()
    return Inbound(
        kind=msg_type if msg_type in KINDS else "other",
        openid=openid,
        to=fields.get("ToUserName", ""),
        create_time=fields.get("CreateTime", ""),
        fields=fields,
        body_format=body_format,
    )
