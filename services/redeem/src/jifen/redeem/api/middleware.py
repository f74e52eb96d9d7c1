"""``Cache-Control: no-store`` on the redeem API's private answers."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# balances, held points and voucher codes: never kept by a browser, a proxy or a CDN
PRIVATE_PREFIXES = ("/v1/wallets", "/v1/redemptions", "/v1/audit")


class NoStore:
    """``Cache-Control: no-store`` on every response under :data:`PRIVATE_PREFIXES`,
    refusals included (an ``insufficient_points`` problem names the balance)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PRIVATE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                ]
                headers += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_no_store)
