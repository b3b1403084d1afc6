"""Encryption at rest for contexts' saved profiles: AES-256-GCM, one random nonce per archive.

A sealed archive is `MAGIC | key id (8) | nonce (12) | ciphertext+tag`, with the magic, the key id and
the context's id as associated data: an archive moved to another context's row, or altered by one
byte, does not open. Keys are derived (HKDF-SHA256) from secrets: `BROWSERFLEET_SECRET` when the
operator sets it, and a random one generated once and kept in the store (`server_secrets`). The
first key seals; any of them opens what it sealed (the key id says which), so setting or changing
`BROWSERFLEET_SECRET` later keeps every archive readable while the old secret is still given.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"BFCTX\x01"
_KEY_ID, _NONCE = 8, 12
_HEAD = len(MAGIC) + _KEY_ID + _NONCE
PURPOSE = b"browserfleet/context-archives/v1"


class SealError(Exception):
    """An archive that cannot be opened: not one of ours, another key's, or altered."""


def derive_key(secret: str) -> bytes:
    """The 256-bit archive key for a secret (any length of text)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE).derive(secret.encode())


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"key id:" + key).digest()[:_KEY_ID]


class Sealer:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys or any(len(key) != 32 for key in keys):
            raise ValueError("a Sealer needs 256-bit keys")
        self._sealing = keys[0]
        self._keys = {key_id(key): key for key in keys}

    def seal(self, plaintext: bytes, context_id: str) -> bytes:
        head = MAGIC + key_id(self._sealing)
        nonce = os.urandom(_NONCE)
        return head + nonce + AESGCM(self._sealing).encrypt(nonce, plaintext, head + context_id.encode())

    def open(self, sealed: bytes, context_id: str) -> bytes:
        if len(sealed) < _HEAD + 16 or not sealed.startswith(MAGIC):
            raise SealError("not a browserfleet context archive")
        kid = sealed[len(MAGIC) : len(MAGIC) + _KEY_ID]
        key = self._keys.get(kid)
        if key is None:
            raise SealError(
                "sealed with a key this server does not have (was BROWSERFLEET_SECRET changed or unset?)"
            )
        nonce = sealed[len(MAGIC) + _KEY_ID : _HEAD]
        try:
            return AESGCM(key).decrypt(nonce, sealed[_HEAD:], MAGIC + kid + context_id.encode())
        except InvalidTag:
            raise SealError("altered, or not this context's archive") from None
