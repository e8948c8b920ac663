"""SMS and identity adapters: the HTTP ones against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from routing.adapters.identity import (
    HttpIdentityVerifier,
    IdentityVerifier,
    LocalFormatOnlyVerifier,
    Verification,
    VerificationStatus,
)
from routing.adapters.sms import (
    OTP_TEMPLATE,
    TEMPLATES,
    HttpSmsGateway,
    LocalSmsOutbox,
    SmsDeliveryError,
    SmsGateway,
    SmsReceipt,
    SmsTemplateError,
    render_sms,
    sms_key,
)
from routing.handoff.local_receivers import LOCAL_SMS, running_local_receiver
from routing.identity import IdKind, mask_phone
from tests.fakes import fake_identity

PERSON = fake_identity(42)
API_KEY = "test-sms-api-key"
KEY = sms_key(OTP_TEMPLATE, "a-challenge-nonce")
APP_KEY = "test-identity-app-key"
TODAY = date(2025, 6, 1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def release() -> asyncio.Event:
    """Lets a deliberately slow handler finish at the end of a test, so teardown is quick."""
    return asyncio.Event()


@pytest.fixture
async def serve(aiohttp_server: Any, release: asyncio.Event) -> AsyncIterator[Any]:
    """Start a server on 127.0.0.1 whose single POST route runs `handler`; returns its URL."""
    seen: list[dict[str, Any]] = []

    async def start(handler: Handler, path: str = "/messages") -> str:
        async def recording(request: web.Request) -> web.StreamResponse:
            seen.append({"headers": dict(request.headers), "body": await request.read()})
            return await handler(request)

        app = web.Application()
        app.router.add_post(path, recording)
        server = await aiohttp_server(app, host="127.0.0.1")
        return str(server.make_url(path))

    start.seen = seen  # type: ignore[attr-defined]
    yield start
    release.set()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- templates


def test_render_the_otp_text() -> None:
    text = render_sms(OTP_TEMPLATE, {"code": "012345"})
    assert text == "【上海110】您的验证码是012345，5分钟内有效。请勿告诉他人。"


@pytest.mark.parametrize(
    ("template_id", "params"),
    [
        ("nope", {"code": "123456"}),
        (OTP_TEMPLATE, {}),
        (OTP_TEMPLATE, {"code": "123456", "extra": "x"}),
        (OTP_TEMPLATE, {"id": "123456"}),
    ],
)
def test_render_refuses_unknown_templates_and_wrong_params(
    template_id: str, params: dict[str, str]
) -> None:
    with pytest.raises(SmsTemplateError):
        render_sms(template_id, params)


@pytest.mark.parametrize(
    "value",
    [
        PERSON.id_number,
        PERSON.id_number.lower(),
        f"号码 {PERSON.id_number[:6]} {PERSON.id_number[6:]}",
        "".join(chr(ord(c) + 0xFEE0) for c in PERSON.id_number),
        PERSON.id_number[:15],  # an old 15-digit number
        "USA310090030712",
        "H12345678",
        "931840199003071234",
    ],
)
def test_render_refuses_anything_that_looks_like_an_id_number(value: str) -> None:
    templates = {"t": "您好，{who}"}
    with pytest.raises(SmsTemplateError, match="ID number"):
        render_sms("t", {"who": value}, templates)
    assert render_sms("t", {"who": "张*"}, templates) == "您好，张*"


# --------------------------------------------------------------------------- local outbox


async def test_local_outbox_records_in_memory_and_file_without_the_phone_in_clear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "var" / "local-sms.jsonl"
    outbox = LocalSmsOutbox(path, clock=lambda: 1000.0)
    gateway: SmsGateway = outbox
    with caplog.at_level(logging.WARNING, logger="routing.adapters.sms"):
        receipt = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "204060"}, key="k1")
        await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "314159"}, key="k2")
    assert receipt.gateway == "local" and receipt.message_id.startswith("local-")
    assert [m.params["code"] for m in outbox.messages] == ["204060", "314159"]
    last = outbox.last_to(PERSON.phone)
    assert last is not None and "314159" in last.text and last.at == 1000.0
    assert outbox.last_to(fake_identity(43).phone) is None

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["text"] for line in lines] == [m.text for m in outbox.messages]
    assert lines[0]["to"] == mask_phone(PERSON.phone)
    assert PERSON.phone not in path.read_text(encoding="utf-8")

    assert "LOCAL SMS, not sent" in caplog.text
    assert mask_phone(PERSON.phone) in caplog.text
    assert PERSON.phone not in caplog.text and "204060" not in caplog.text
    assert PERSON.phone not in repr(outbox.messages)


async def test_local_outbox_without_a_file_and_refusing_bad_params() -> None:
    outbox = LocalSmsOutbox(None)
    await outbox.send(PERSON.phone, OTP_TEMPLATE, {"code": "111111"}, key=KEY)
    with pytest.raises(SmsTemplateError):
        await outbox.send(PERSON.phone, OTP_TEMPLATE, {"code": PERSON.id_number}, key="k2")
    assert len(outbox.messages) == 1


# --------------------------------------------------------------------------- HTTP SMS


async def test_http_sms_success_sends_json_with_auth_and_idempotency_key(serve: Any) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"message_id": "m-1"})

    url = await serve(ok)
    gateway = HttpSmsGateway(url.removesuffix("/messages") + "/", API_KEY, timeout_s=5)
    try:
        receipt = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert receipt == SmsReceipt(message_id="m-1", gateway="http")
    (request,) = serve.seen
    assert json.loads(request["body"]) == {
        "phone": PERSON.phone,
        "template_id": OTP_TEMPLATE,
        "params": {"code": "123456"},
    }
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["Idempotency-Key"] == KEY


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (401, False)]
)
async def test_http_sms_non_2xx_is_a_typed_error(serve: Any, status: int, retryable: bool) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=status)

    gateway = HttpSmsGateway((await serve(fail)).removesuffix("/messages"), API_KEY)
    try:
        with pytest.raises(SmsDeliveryError) as caught:
            await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert caught.value.status == status and caught.value.retryable is retryable


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b"", b"[]", b'{"id": 1}', b'{"message_id": ""}', b"null"]
)
async def test_http_sms_garbage_answer_is_a_typed_error(serve: Any, body: bytes) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    gateway = HttpSmsGateway((await serve(garbage)).removesuffix("/messages"), API_KEY)
    try:
        with pytest.raises(SmsDeliveryError) as caught:
            await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert caught.value.retryable is False and caught.value.status == 200


async def test_http_sms_slow_server_times_out(serve: Any, release: asyncio.Event) -> None:
    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"message_id": "late"})

    gateway = HttpSmsGateway((await serve(slow)).removesuffix("/messages"), API_KEY, 0.2)
    try:
        with pytest.raises(SmsDeliveryError, match="timed out") as caught:
            await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert caught.value.retryable is True


async def test_http_sms_unreachable_is_a_typed_error() -> None:
    gateway = HttpSmsGateway(closed_port_url(), API_KEY, timeout_s=5)
    try:
        with pytest.raises(SmsDeliveryError, match="unreachable") as caught:
            await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert caught.value.retryable is True


async def test_http_sms_refuses_an_id_number_before_sending(serve: Any) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"message_id": "m"})

    gateway = HttpSmsGateway((await serve(ok)).removesuffix("/messages"), API_KEY)
    try:
        with pytest.raises(SmsTemplateError):
            await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": PERSON.id_number}, key=KEY)
    finally:
        await gateway.close()
    assert serve.seen == []


def test_sms_keys_are_stable_per_logical_message_and_tell_nothing() -> None:
    key = sms_key(OTP_TEMPLATE, "nonce-1")
    assert key == sms_key(OTP_TEMPLATE, "nonce-1")  # another process, another attempt
    assert len(key) == 32 and int(key, 16) >= 0 and "nonce" not in key
    assert key != sms_key(OTP_TEMPLATE, "nonce-2") != sms_key("mediation_cancel", "nonce-1")
    assert sms_key("t", "a", "b") != sms_key("t", "ab")  # parts cannot run into each other


async def test_a_resend_under_the_same_key_is_kept_once_by_the_local_sms_gateway(
    tmp_path: Path,
) -> None:
    async with running_local_receiver(LOCAL_SMS, tmp_path, id_field="message_id") as running:
        gateway = HttpSmsGateway(running.base_url, API_KEY, timeout_s=5)
        try:
            first = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
            again = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
            other = sms_key(OTP_TEMPLATE, "the next code")
            fresh = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "654321"}, key=other)
        finally:
            await gateway.close()
        receiver = running.receiver
    assert not first.duplicate and again.duplicate and not fresh.duplicate
    assert again.message_id == first.message_id != fresh.message_id
    assert receiver.keys() == [KEY, KEY, other] and receiver.logical_count == 2
    assert [r.status for r in receiver.requests] == [201, 409, 201]
    assert PERSON.phone not in (tmp_path / f"{LOCAL_SMS}.jsonl").read_text(encoding="utf-8")


async def test_a_409_without_a_readable_body_is_still_the_message_already_accepted(
    serve: Any,
) -> None:
    async def conflict(request: web.Request) -> web.Response:
        return web.Response(status=409, body=b"<html>dup")

    gateway = HttpSmsGateway((await serve(conflict)).removesuffix("/messages"), API_KEY)
    try:
        receipt = await gateway.send(PERSON.phone, OTP_TEMPLATE, {"code": "123456"}, key=KEY)
    finally:
        await gateway.close()
    assert receipt.duplicate and receipt.message_id == f"duplicate-{KEY[:12]}"


async def test_the_local_outbox_keeps_one_message_per_key() -> None:
    outbox = LocalSmsOutbox(None)
    first = await outbox.send(PERSON.phone, OTP_TEMPLATE, {"code": "111111"}, key=KEY)
    again = await outbox.send(PERSON.phone, OTP_TEMPLATE, {"code": "111111"}, key=KEY)
    assert again == SmsReceipt(first.message_id, "local", duplicate=True)
    assert len(outbox.messages) == 1
    with pytest.raises(SmsTemplateError, match="idempotency key"):
        await outbox.send(PERSON.phone, OTP_TEMPLATE, {"code": "111111"}, key="")


# --------------------------------------------------------------------------- HTTP identity


def identity_service(answer: Any, status: int = 200) -> Handler:
    """A stand-in service that checks our signature before answering."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        message = f"{request.headers['X-Timestamp']}\n{request.headers['X-Nonce']}\n".encode()
        expected = hmac.new(APP_KEY.encode(), message + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        if isinstance(answer, bytes):
            return web.Response(body=answer, status=status, content_type="application/json")
        return web.json_response(answer, status=status)

    return handle


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"result": "consistent"}, Verification(VerificationStatus.VERIFIED, "consistent")),
        ({"result": "inconsistent"}, Verification(VerificationStatus.REJECTED, "mismatch")),
        ({"result": "not_found"}, Verification(VerificationStatus.REJECTED, "no_record")),
        ({"result": "maybe"}, Verification(VerificationStatus.UNAVAILABLE, "bad_response")),
        (b"{not json", Verification(VerificationStatus.UNAVAILABLE, "bad_response")),
        (b"[1, 2]", Verification(VerificationStatus.UNAVAILABLE, "bad_response")),
    ],
)
async def test_http_identity_maps_answers(
    serve: Any, caplog: pytest.LogCaptureFixture, answer: Any, expected: Verification
) -> None:
    url = await serve(identity_service(answer), "/verify")
    verifier: IdentityVerifier = HttpIdentityVerifier(url, APP_KEY, timeout_s=5)
    with caplog.at_level(logging.DEBUG):
        result = await verifier.verify(PERSON.name, IdKind.RESIDENT_ID, PERSON.id_number)
    await verifier.close()  # type: ignore[attr-defined]
    assert result == expected
    (request,) = serve.seen
    sent = json.loads(request["body"])
    assert sent == {"name": PERSON.name, "id_kind": "resident_id", "id_number": PERSON.id_number}
    assert request["headers"]["Content-Type"].startswith("application/json")
    assert PERSON.id_number not in caplog.text and PERSON.name not in caplog.text


@pytest.mark.parametrize("status", [500, 502, 429, 400, 401, 403])
async def test_http_identity_errors_are_unavailable_not_rejected(serve: Any, status: int) -> None:
    url = await serve(identity_service({"error": "x"}, status=status), "/verify")
    verifier = HttpIdentityVerifier(url, APP_KEY)
    try:
        result = await verifier.verify(PERSON.name, "resident_id", PERSON.id_number)
    finally:
        await verifier.close()
    assert result == Verification(VerificationStatus.UNAVAILABLE, f"http_{status}")


async def test_http_identity_wrong_key_is_refused_by_the_service(serve: Any) -> None:
    url = await serve(identity_service({"result": "consistent"}), "/verify")
    verifier = HttpIdentityVerifier(url, "another-key")
    try:
        result = await verifier.verify(PERSON.name, "resident_id", PERSON.id_number)
    finally:
        await verifier.close()
    assert result == Verification(VerificationStatus.UNAVAILABLE, "http_401")


async def test_http_identity_slow_service_is_unavailable(
    serve: Any, release: asyncio.Event
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"result": "consistent"})

    verifier = HttpIdentityVerifier(await serve(slow, "/verify"), APP_KEY, timeout_s=0.2)
    try:
        result = await verifier.verify(PERSON.name, "resident_id", PERSON.id_number)
    finally:
        await verifier.close()
    assert result == Verification(VerificationStatus.UNAVAILABLE, "timeout")


async def test_http_identity_unreachable_is_unavailable() -> None:
    verifier = HttpIdentityVerifier(closed_port_url(), APP_KEY, timeout_s=5)
    try:
        result = await verifier.verify(PERSON.name, "resident_id", PERSON.id_number)
    finally:
        await verifier.close()
    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.reason.startswith("unreachable")


def test_signature_covers_timestamp_nonce_and_body() -> None:
    verifier = HttpIdentityVerifier("http://127.0.0.1:1/", APP_KEY)
    base = verifier.sign("1", "n", b"{}")
    assert base == hmac.new(APP_KEY.encode(), b"1\nn\n{}", hashlib.sha256).hexdigest()
    assert len({base, verifier.sign("2", "n", b"{}"), verifier.sign("1", "m", b"{}")}) == 3
    assert verifier.sign("1", "n", b"{ }") != base


# --------------------------------------------------------------------------- local verifier


async def test_local_verifier_is_format_only_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier: IdentityVerifier = LocalFormatOnlyVerifier(today=lambda: TODAY)
    with caplog.at_level(logging.WARNING, logger="routing.adapters.identity"):
        first = await verifier.verify(PERSON.name, IdKind.RESIDENT_ID, PERSON.id_number)
        second = await verifier.verify(PERSON.name, "resident_id", PERSON.id_number.lower())
    assert (
        first == second == Verification(VerificationStatus.FORMAT_ONLY, "local_format_check_only")
    )
    warnings = [r for r in caplog.records if "NOT a real identity check" in r.getMessage()]
    assert len(warnings) == 1
    assert PERSON.id_number not in caplog.text and PERSON.name not in caplog.text


@pytest.mark.parametrize(
    ("name", "kind", "number", "reason"),
    [
        (PERSON.name, "resident_id", PERSON.id_number[:-1] + "Y", "id_characters"),
        (PERSON.name, "resident_id", PERSON.id_number[:17], "id_length"),
        (PERSON.name, "tw_permit", PERSON.id_number, "id_kind_mismatch"),
        ("张", "resident_id", PERSON.id_number, "name_too_short"),
        ("张3", "resident_id", PERSON.id_number, "name_digits"),
    ],
)
async def test_local_verifier_rejects_bad_formats(
    name: str, kind: str, number: str, reason: str
) -> None:
    result = await LocalFormatOnlyVerifier(today=lambda: TODAY).verify(name, kind, number)
    assert result == Verification(VerificationStatus.REJECTED, reason)


def test_templates_are_simplified_chinese_and_signed() -> None:
    for text in TEMPLATES.values():
        assert text.startswith("【上海110】")
        assert "驗證碼" not in text and "請" not in text
