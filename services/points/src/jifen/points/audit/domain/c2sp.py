"""Jifen's checkpoints as C2SP transparency-log checkpoints, so that existing witnesses
(c2sp.org/tlog-witness implementations) can cosign the ledger.

- c2sp.org/signed-note: a note is a text ending in a newline, a blank line, and signature
  lines ``— <key name> base64(key ID || signature)``; an Ed25519 key's ID is
  ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` and it signs the note text.
- c2sp.org/tlog-checkpoint: the text is the origin line, the tree size (decimal) and the
  base64 RFC 6962 root hash, one per line; the log's key name matches the origin.
- c2sp.org/tlog-cosignature (cosignature/v1, Ed25519): the signature is
  ``u64 timestamp (big-endian) || Ed25519 signature`` over
  ``"cosignature/v1\\ntime <timestamp>\\n" || note text``; the key ID uses type byte 0x04.

The note is signed with the same operator key as the Jifen checkpoint (Ed25519 is
deterministic: the same checkpoint always gives the same note). Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jifen.points.audit.domain.checkpoint import Checkpoint, raw_public_key

ED25519 = 0x01  # signed-note signature type: Ed25519 over the note text
COSIGNATURE_V1 = 0x04  # timestamped Ed25519 witness cosignature (tlog-cosignature)
DASH = "\u2014"  # em dash, the first character of every signature line
MAX_TIMESTAMP = 2**63 - 1
MEDIA_TYPE = "text/plain; charset=utf-8"


def checkpoint_text(cp: Checkpoint) -> bytes:
    """The note text of a checkpoint: origin, tree size, base64 root hash (no extensions)."""
    root = base64.b64encode(cp.root_hash).decode()
    return f"{cp.origin}\n{cp.tree_size}\n{root}\n".encode()


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or any(ord(c) < 0x20 for c in name):
        raise ValueError(f"key name {name!r} must be non-empty, without spaces or '+'")


def vkey(name: str, public_key: Ed25519PublicKey) -> str:
    """The verifier key a witness is configured with: ``name+hex key ID+base64(0x01||key)``."""
    raw = raw_public_key(public_key)
    return (
        f"{name}+{key_id(name, ED25519, raw).hex()}+"
        + base64.b64encode(bytes([ED25519]) + raw).decode()
    )


def signature_line(name: str, kid: bytes, signature: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(kid + signature).decode()}\n"


def sign_checkpoint_note(key: Ed25519PrivateKey, cp: Checkpoint) -> str:
    """The log's signature line (key name = origin) over the checkpoint's note text."""
    check_key_name(cp.origin)
    kid = key_id(cp.origin, ED25519, raw_public_key(key.public_key()))
    return signature_line(cp.origin, kid, key.sign(checkpoint_text(cp)))


def note(cp: Checkpoint, lines: list[str]) -> str:
    """The signed note: text, blank line, the signature lines (log's first)."""
    return checkpoint_text(cp).decode() + "\n" + "".join(lines)


def cosignature_message(timestamp: int, cp: Checkpoint) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text(cp)


def cosign(key: Ed25519PrivateKey, name: str, timestamp: int, cp: Checkpoint) -> str:
    """A witness's cosignature/v1 line (what a tlog-witness returns)."""
    check_key_name(name)
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp} out of range")
    kid = key_id(name, COSIGNATURE_V1, raw_public_key(key.public_key()))
    sig = key.sign(cosignature_message(timestamp, cp))
    return signature_line(name, kid, struct.pack(">Q", timestamp) + sig)


@dataclass(frozen=True, slots=True)
class Cosignature:
    name: str
    timestamp: int
    signature: bytes  # the 64-byte Ed25519 signature

    def line(self, public_key: bytes) -> str:
        kid = key_id(self.name, COSIGNATURE_V1, public_key)
        return signature_line(self.name, kid, struct.pack(">Q", self.timestamp) + self.signature)


def parse_signature_line(line: str) -> tuple[str, bytes]:
    """(key name, decoded key ID || signature) of one signature line; ValueError if malformed."""
    text = line[:-1] if line.endswith("\n") else line
    if "\n" in text or not text.startswith(DASH + " "):
        raise ValueError("a signature line is '— <key name> <base64>' on one line")
    parts = text[2:].split(" ")
    if len(parts) != 2:
        raise ValueError("a signature line is '— <key name> <base64>' on one line")
    name, data = parts
    check_key_name(name)
    try:
        raw = base64.b64decode(data.encode(), validate=True)
    except ValueError:
        raise ValueError("the signature is not base64") from None
    if len(raw) < 5:
        raise ValueError("the signature is shorter than a key ID")
    return name, raw


def verify_cosignature(public_key: bytes, line: str, cp: Checkpoint) -> Cosignature:
    """The cosignature in ``line`` if it is a valid cosignature/v1 of ``cp`` by this key;
    ValueError saying why not."""
    name, raw = parse_signature_line(line)
    if raw[:4] != key_id(name, COSIGNATURE_V1, public_key):
        raise ValueError(
            f"key ID {raw[:4].hex()} is not the cosignature/v1 key ID of {name} with this key"
        )
    if len(raw) != 4 + 8 + 64:
        raise ValueError(
            f"a cosignature/v1 signature is 72 bytes after the key ID, not {len(raw) - 4}"
        )
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    if timestamp > MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp} exceeds 2^63 - 1")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            raw[12:], cosignature_message(timestamp, cp)
        )
    except InvalidSignature:
        raise ValueError("the cosignature does not verify against this checkpoint") from None
    return Cosignature(name, timestamp, raw[12:])
