"""Witness interoperability: Jifen's checkpoints as C2SP tlog-checkpoint signed notes, and
C2SP tlog-cosignature/v1 cosignatures handed in, checked with an independent
implementation written here from the specifications (c2sp.org/signed-note,
tlog-checkpoint, tlog-cosignature): its own note parser, key IDs and a pure-Python Ed25519
verifier (RFC 8032 section 5.1.7), itself first checked against the Go reference
implementation's published note (golang.org/x/mod/sumdb/note). Then the committed vectors
(schemas/ledger/c2sp-vectors.json) and the running points API (a real ledger in a fresh
database) against it."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jifen.kernel.settings import REPO_ROOT
from jifen.points.audit.domain import c2sp
from jifen.points.audit.vectors import build_c2sp_vectors
from jifen.points.db import MIGRATIONS
from tests.integration.points.test_audit_fixtures import Ledger, ledger_in, sample_batches
from tests.integration.points.test_audit_tamper import FreshDb

VECTORS = REPO_ROOT / "schemas" / "ledger" / "c2sp-vectors.json"

# --- Ed25519 verification, RFC 8032 section 5.1.7, nothing but integers and SHA-512

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return _P - x if (x & 1) != sign else x


Point = tuple[int, int, int, int]


def _decompress(b: bytes) -> Point | None:
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


def _add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, p: Point) -> Point:
    q: Point = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, p)
        p, s = _add(p, p), s >> 1
    return q


def _same(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: Point = (_GX, _GY, 1, _GX * _GY % _P)


def ed25519_verify(public: bytes, message: bytes, sig: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    a, r = _decompress(public), _decompress(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + public + message).digest(), "little") % _L
    return _same(_mul(s, _G), _add(r, _mul(k, a)))


# --- signed notes (c2sp.org/signed-note) and cosignatures, from the text of the specs


def spec_key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """``name+hex key ID+base64(type || key)``: (name, key ID, type, public key)."""
    name, kid, data = vkey.split("+", 2)
    raw = base64.b64decode(data)
    return name, bytes.fromhex(kid), raw[0], raw[1:]


def open_note(note: str, keys: list[tuple[str, int, bytes]]) -> tuple[str, list[str]]:
    """The verified text of a note and the names whose signatures verified; unknown
    signatures ignored, a known one that fails rejects the note (AssertionError)."""
    assert all(c == "\n" or ord(c) >= 0x20 for c in note), "control characters"
    assert note.endswith("\n")
    cut = note.rfind("\n\n")
    text, sig_lines = note[: cut + 1], note[cut + 2 :].splitlines()
    assert text and sig_lines and len(sig_lines) <= 16
    verified = []
    for line in sig_lines:
        assert line.startswith("\u2014 "), line
        name, data = line[2:].split(" ")
        assert name and "+" not in name
        raw = base64.b64decode(data, validate=True)
        for key_name, sig_type, public in keys:
            if key_name != name or raw[:4] != spec_key_id(name, sig_type, public):
                continue
            if sig_type == 0x01:
                assert ed25519_verify(public, text.encode(), raw[4:]), f"bad signature by {name}"
            elif sig_type == 0x04:
                assert len(raw) == 4 + 8 + 64
                (t,) = struct.unpack(">Q", raw[4:12])
                message = f"cosignature/v1\ntime {t}\n".encode() + text.encode()
                assert ed25519_verify(public, message, raw[12:]), f"bad cosignature by {name}"
            verified.append(name)
    assert verified, "no signature from a known key"
    return text, verified


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    origin, size, root, *extensions = text.rstrip("\n").split("\n")
    assert origin and not extensions
    assert size == str(int(size)), "tree size in decimal without leading zeroes"
    return origin, int(size), base64.b64decode(root, validate=True)


# the Go reference implementation's example (golang.org/x/mod/sumdb/note, note_test.go)
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)


def test_the_independent_verifier_and_jifen_agree_with_the_go_reference_note() -> None:
    name, kid, sig_type, public = parse_vkey(GO_VKEY)
    assert (sig_type, kid) == (0x01, spec_key_id(name, 0x01, public))
    text, verified = open_note(GO_TEXT + "\n" + GO_SIG, [(name, 0x01, public)])
    assert (text, verified) == (GO_TEXT, ["PeterNeumann"])
    with pytest.raises(AssertionError):
        open_note(GO_TEXT.replace("answer", "Answer") + "\n" + GO_SIG, [(name, 0x01, public)])
    # Jifen's signer reproduces the Go note byte for byte (Ed25519 is deterministic)
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]  # 0x01 || seed
    key = Ed25519PrivateKey.from_private_bytes(seed)
    assert c2sp.vkey(name, key.public_key()) == GO_VKEY
    ours = c2sp.signature_line(name, c2sp.key_id(name, 0x01, public), key.sign(GO_TEXT.encode()))
    assert ours == GO_SIG


def test_the_committed_c2sp_vectors_are_what_the_code_makes_and_verify_independently() -> None:
    v = json.loads(VECTORS.read_text())
    assert v == build_c2sp_vectors()
    log_name, log_kid, _, log_public = parse_vkey(v["log"]["vkey"])
    assert log_kid.hex() == v["log"]["key_id_hex"]
    assert log_public == base64.b64decode(v["log"]["public_key"])
    wit = v["cosignature"]
    wit_public = base64.b64decode(wit["public_key"])
    keys = [(log_name, 0x01, log_public), (wit["key_name"], 0x04, wit_public)]
    text, verified = open_note(wit["note_with_cosignature"], keys)
    assert verified == [log_name, wit["key_name"]]
    assert text == v["checkpoint"]["note_text"] and text + "\n" in v["checkpoint"]["note"]
    origin, size, root = parse_checkpoint(text)
    assert (origin, size, root.hex()) == (
        log_name,
        v["checkpoint"]["tree_size"],
        v["checkpoint"]["root_hash_hex"],
    )
    assert wit["signed_message"] == f"cosignature/v1\ntime {wit['timestamp']}\n{text}"
    for bad in v["must_not_verify"]:
        note = v["checkpoint"]["note"] + bad["signature_line"]
        try:
            _, ok = open_note(note, keys)
        except AssertionError:
            continue  # a known key whose signature fails: rejected
        assert wit["key_name"] not in ok, bad["why"]  # or not recognised as the witness's


@pytest.fixture
async def lg(fresh_db: FreshDb, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with ledger_in(await fresh_db(MIGRATIONS), tmp_path / "keys") as ledger:
        for b in sample_batches(ledger.book):
            await ledger.append(b)
        await ledger.checkpoint()
        yield ledger


def witness_key() -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.generate()
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def spec_cosignature(
    key: Ed25519PrivateKey,
    name: str,
    t: int,
    text: str,
    claimed_t: int | None = None,
    sig_type: int = 0x04,
) -> str:
    """What a tlog-witness sends back, built from the spec (not from Jifen's code); the
    last two arguments forge it (another timestamp than signed, another key ID type)."""
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = key.sign(f"cosignature/v1\ntime {t}\n".encode() + text.encode())
    stamp = struct.pack(">Q", t if claimed_t is None else claimed_t)
    blob = spec_key_id(name, sig_type, public) + stamp + sig
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


async def test_a_c2sp_witness_cosigns_the_running_ledger(lg: Ledger) -> None:
    keys = (await lg.http.get("/v1/audit/keys", headers=lg.auth())).json()["items"]
    log_name, _, _, log_public = parse_vkey(keys[0]["c2sp_vkey"])
    assert base64.b64encode(log_public).decode() == keys[0]["public_key"]
    r = await lg.http.get(
        "/v1/audit/checkpoints/latest", params={"format": "c2sp"}, headers=lg.auth()
    )
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    text, verified = open_note(r.text, [(log_name, 0x01, log_public)])
    origin, size, root = parse_checkpoint(text)
    cp = (await lg.http.get("/v1/audit/checkpoints/latest", headers=lg.auth())).json()
    assert (origin, size, root.hex(), verified) == (
        log_name,
        cp["tree_size"],
        cp["root_hash"],
        [log_name],
    )
    # the same note again (deterministic), and by tree size
    again = await lg.http.get(
        f"/v1/audit/checkpoints/{size}", params={"format": "c2sp"}, headers=lg.auth()
    )
    assert again.text == r.text

    key, public = witness_key()
    name, t = "witness.riders-union.example/w1", 1_795_000_000
    line = spec_cosignature(key, name, t, text)
    body = {"public_key": base64.b64encode(public).decode(), "line": line}
    url = f"/v1/audit/checkpoints/{size}/cosignatures/c2sp"
    r = await lg.http.post(url, json=body, headers=lg.auth())
    assert r.status_code == 201, r.text
    [cos] = r.json()["cosignatures"]
    assert (cos["format"], cos["witness"], cos["timestamp"], cos["line"]) == (
        "tlog-cosignature/v1",
        name,
        t,
        line,
    )
    # the note now carries the cosignature: an independent client checks both signatures
    note = (
        await lg.http.get(
            "/v1/audit/checkpoints/latest", params={"format": "c2sp"}, headers=lg.auth()
        )
    ).text
    keyring = [(log_name, 0x01, log_public), (name, 0x04, public)]
    assert open_note(note, keyring)[1] == [log_name, name]

    # refused: another timestamp than signed, another checkpoint, a type-0x01 key ID, a
    # name reused with another key
    other_text = text.replace(f"\n{size}\n", f"\n{size + 1}\n")
    for wrong in (
        spec_cosignature(key, name, t, text, claimed_t=t + 1),
        spec_cosignature(key, name, t, other_text),
        spec_cosignature(key, name, t, text, sig_type=0x01),
        line.replace("\u2014 ", "- ", 1),
    ):
        r = await lg.http.post(url, json={**body, "line": wrong}, headers=lg.auth())
        assert r.status_code == 422, (wrong, r.text)
    other_key, other_public = witness_key()
    r = await lg.http.post(
        url,
        json={
            "public_key": base64.b64encode(other_public).decode(),
            "line": spec_cosignature(other_key, name, t, text),
        },
        headers=lg.auth(),
    )
    assert r.status_code == 409 and "witness_key_changed" in r.text, r.text
    # a volunteer may neither read the note nor hand in a cosignature
    r = await lg.http.get(
        "/v1/audit/checkpoints/latest", params={"format": "c2sp"}, headers=lg.auth("volunteer")
    )
    assert r.status_code == 403
    r = await lg.http.post(url, json=body, headers=lg.auth("volunteer"))
    assert r.status_code == 403
