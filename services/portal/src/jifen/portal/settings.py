"""Settings of the portal (``JIFEN_PORTAL_*``).

The portal is a community app like any other: it reaches the three services only through their
public HTTP APIs, with its own app credential (``JIFEN_PORTAL_APP_CREDENTIAL``, or a file naming
it in ``JIFEN_PORTAL_APP_CREDENTIAL_FILE``; issued by the organisation's admin with
``POST /v1/apps/credentials``) and, for a signed-in person, that person's token."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jifen.kernel.settings import REPO_ROOT


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JIFEN_PORTAL_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8004
    tasks_url: str = Field(
        default="http://127.0.0.1:8001", validation_alias="JIFEN_PORTAL_TASKS_URL"
    )
    points_url: str = Field(
        default="http://127.0.0.1:8002", validation_alias="JIFEN_PORTAL_POINTS_URL"
    )
    redeem_url: str = Field(
        default="http://127.0.0.1:8003", validation_alias="JIFEN_PORTAL_REDEEM_URL"
    )
    app_credential: str | None = None
    app_credential_file: Path | None = None
    # a session unused this long is forgotten (its tokens live 12 h at most anyway)
    session_idle_seconds: int = 4 * 3600
    # a cookie marked Secure is not sent over plain http: on for any deployment behind TLS
    secure_cookies: bool = False
    # where people reach the portal (scheme, host, any path prefix): the absolute links a
    # printed poster's QR codes carry; unset, http://{host}:{port}. Never the request's Host
    # header, which a client chooses
    public_url: str | None = None
    log_level: str = Field(default="INFO", validation_alias="JIFEN_LOG_LEVEL")
    # what the portal keeps itself (the photos people attach, under photos/); unset: portal/ in
    # the stack's folder, the one holding the keys (var/ for `make run`, a test stack's own)
    data_dir: Path | None = None
    keys_dir: Path = Field(default=REPO_ROOT / "var" / "keys", validation_alias="JIFEN_KEYS_DIR")

    def data_path(self) -> Path:
        return self.data_dir or self.keys_dir.parent / "portal"

    def base_url(self) -> str:
        """The portal's public address, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def credential(self) -> str:
        if self.app_credential:
            return self.app_credential.strip()
        if self.app_credential_file and self.app_credential_file.exists():
            return self.app_credential_file.read_text().strip()
        raise RuntimeError(
            "门户没有应用凭证 the portal has no app credential: set JIFEN_PORTAL_APP_CREDENTIAL "
            "(an admin issues one with POST /v1/apps/credentials) or "
            "JIFEN_PORTAL_APP_CREDENTIAL_FILE"
        )
