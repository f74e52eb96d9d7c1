"""The operator's checkpoint signing keys, under ``$JIFEN_KEYS_DIR/audit`` (created on first use).

Same layout as the token keys (kernel ``auth``): ``signing/<kid>.pem`` private,
``public/<kid>.pem`` public, ``current`` names the signing key. Rotating makes a new key
current and keeps every older public key, so checkpoints signed before still verify.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jifen.kernel.auth import ensure_signing_key, rotate_signing_key


def audit_keys_dir(keys_dir: Path) -> Path:
    return keys_dir / "audit"


def current_signer(keys_dir: Path) -> tuple[str, Ed25519PrivateKey]:
    d = audit_keys_dir(keys_dir)
    kid = ensure_signing_key(d)
    key = serialization.load_pem_private_key((d / "signing" / f"{kid}.pem").read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"audit key {kid} is not Ed25519")
    return kid, key


def signer(keys_dir: Path, kid: str) -> Ed25519PrivateKey | None:
    """The private key ``kid`` if this deployment still holds it (it signs the C2SP form of
    checkpoints made with it)."""
    path = audit_keys_dir(keys_dir) / "signing" / f"{kid}.pem"
    if "/" in kid or not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    return key if isinstance(key, Ed25519PrivateKey) else None


def rotate(keys_dir: Path) -> str:
    return rotate_signing_key(audit_keys_dir(keys_dir))


def public_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    d = audit_keys_dir(keys_dir) / "public"
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(d.glob("*.pem")) if d.exists() else []:
        key = serialization.load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            keys[path.stem] = key
    return keys


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def generate_private_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key
