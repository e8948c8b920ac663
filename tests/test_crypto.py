from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.crypto import DecryptionError, PiiCipher, PiiKeyError, decode_key, resolve_pii_key

CIPHER = PiiCipher(b"a" * 32)


@given(st.text(max_size=2000))
def test_seal_then_open_gives_the_text_back(text: str) -> None:
    assert CIPHER.open(CIPHER.seal(text, "col"), "col") == text


def test_sealed_value_does_not_contain_the_plaintext() -> None:
    sealed = CIPHER.seal("110101199003074514 张三", "col")
    assert "张三".encode() not in sealed and b"110101199003074514" not in sealed
    assert CIPHER.seal("x", "col") != CIPHER.seal("x", "col"), "fresh nonce every time"


def test_tampering_wrong_context_and_wrong_key_are_detected() -> None:
    sealed = bytearray(CIPHER.seal("secret", "col"))
    with pytest.raises(DecryptionError):
        CIPHER.open(bytes(sealed), "other_col")
    with pytest.raises(DecryptionError):
        PiiCipher(b"b" * 32).open(bytes(sealed), "col")
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError):
        CIPHER.open(bytes(sealed), "col")
    with pytest.raises(DecryptionError):
        CIPHER.open(b"", "col")


def test_lookup_hash_is_stable_keyed_and_kind_separated() -> None:
    a = CIPHER.lookup_hash("13800138000", "phone")
    assert a == PiiCipher(b"a" * 32).lookup_hash("13800138000", "phone")
    assert a != PiiCipher(b"b" * 32).lookup_hash("13800138000", "phone")
    assert a != CIPHER.lookup_hash("13800138000", "id_number")


def test_key_must_be_32_bytes_of_base64() -> None:
    with pytest.raises(PiiKeyError):
        PiiCipher(b"short")
    with pytest.raises(PiiKeyError):
        decode_key("not base64 at all!!")


def test_production_refuses_to_run_without_a_key(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(PiiKeyError, match="ALARMBOT_PII_KEY"):
        resolve_pii_key({}, tmp_path, allow_dev_key=False)
    assert not (tmp_path / "pii.key").exists()


def test_development_key_is_generated_once_and_private(tmp_path) -> None:  # noqa: ANN001
    first = resolve_pii_key({}, tmp_path, allow_dev_key=True)
    assert resolve_pii_key({}, tmp_path, allow_dev_key=True) == first
    assert (tmp_path / "pii.key").stat().st_mode & 0o077 == 0
    env_key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    assert resolve_pii_key({"ALARMBOT_PII_KEY": env_key}, tmp_path, True) == b"A" * 32


def test_binary_content_is_sealed_without_text_encoding() -> None:
    data = bytes(range(256)) * 4
    sealed = CIPHER.seal_bytes(data, "attachments.content")
    assert CIPHER.open_bytes(sealed, "attachments.content") == data
    assert len(sealed) == len(data) + 1 + 12 + 16, "version, nonce and tag only"
    with pytest.raises(DecryptionError):
        CIPHER.open_bytes(sealed, "other")
    with pytest.raises(DecryptionError):
        CIPHER.open(CIPHER.seal_bytes(b"\xff\xfe", "col"), "col")  # not UTF-8
