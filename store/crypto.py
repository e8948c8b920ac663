"""Encryption at rest for personal data (AES-256-GCM) and keyed hashes for look-ups.

Everything a citizen types may carry a name, an ID number or a phone number, so message
texts and tracker events are sealed with the same cipher as the identity columns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

logger = logging.getLogger(__name__)

KEY_ENV = "ALARMBOT_PII_KEY"
_FORMAT_VERSION = b"\x01"
_NONCE_BYTES = 12


class PiiKeyError(RuntimeError):
    """The encryption key is missing or malformed."""


class DecryptionError(RuntimeError):
    """A sealed value could not be opened (wrong key, tampering or corruption)."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class PiiCipher:
    """Seals and opens values; `lookup_hash` gives a stable keyed hash for equality search.

    Separate sub-keys for sealing and hashing are derived from one master key, so a leak of
    the hash column does not help an attacker with the ciphertexts and vice versa.
    """

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise PiiKeyError(f"{KEY_ENV} must decode to 32 bytes, got {len(master_key)}")
        self._aead = AESGCM(_derive(master_key, b"alarmbot/aes-gcm/v1"))
        self._hash_key = _derive(master_key, b"alarmbot/lookup-hmac/v1")
        # Its own sub-key: the MACs of SMS one-time codes (routing/otp.py).
        self.otp_key = _derive(master_key, b"alarmbot/otp-hmac/v1")

    def seal(self, plaintext: str, context: str = "") -> bytes:
        """Encrypt `plaintext`; `context` (e.g. the column name) is authenticated, not stored."""
        return self.seal_bytes(plaintext.encode("utf-8"), context)

    def open(self, sealed: bytes, context: str = "") -> str:
        try:
            return self.open_bytes(sealed, context).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecryptionError("cannot open sealed value") from exc

    def seal_bytes(self, data: bytes, context: str = "") -> bytes:
        """As `seal`, for binary content (photos, voice) that text encoding would bloat."""
        nonce = os.urandom(_NONCE_BYTES)
        return _FORMAT_VERSION + nonce + self._aead.encrypt(nonce, data, context.encode("utf-8"))

    def open_bytes(self, sealed: bytes, context: str = "") -> bytes:
        if not sealed or sealed[:1] != _FORMAT_VERSION:
            raise DecryptionError("unknown format version")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context.encode("utf-8"))
        except Exception as exc:  # InvalidTag
            raise DecryptionError("cannot open sealed value") from exc

    def lookup_hash(self, value: str, kind: str) -> str:
        """Hex HMAC-SHA256 of a normalised value; `kind` keeps ID and phone hashes apart."""
        message = f"{kind}\x00{value}".encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise PiiKeyError(f"{KEY_ENV} is not valid base64") from exc


def resolve_pii_key(env: Mapping[str, str], var_dir: Path, allow_dev_key: bool) -> bytes:
    """The key from the environment, or (development only) a generated one under var/.

    In production a missing key is an error: silently generating one would make every
    sealed value unreadable after the next deploy.
    """
    if env.get(KEY_ENV):
        return decode_key(env[KEY_ENV])
    if not allow_dev_key:
        raise PiiKeyError(
            f"{KEY_ENV} is not set. Generate one with `alarmbot keygen` and keep it in your "
            "secret store; without it personal data cannot be encrypted."
        )
    key_file = var_dir / "pii.key"
    if key_file.exists():
        return decode_key(key_file.read_text())
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return decode_key(key_file.read_text())
    with os.fdopen(fd, "w") as handle:
        handle.write(encode_key(key) + "\n")
    logger.warning(
        "%s not set: generated a LOCAL DEVELOPMENT key at %s. Never use it in production.",
        KEY_ENV,
        key_file,
    )
    return key
