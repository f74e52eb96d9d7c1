"""The domain's two ways of saying no, shared by every service and mapped to HTTP once
(``jifen.kernel.web.create_app``): a refusal in the domain's words, and a thing not found.

Kept free of web imports: domain code raises these without knowing about HTTP."""

from __future__ import annotations

from jifen.kernel.i18n import Said


class DomainRefusal(Exception):
    """A request the domain refuses: ``reason`` is machine-readable, ``status`` the HTTP
    status (409 unless a subclass says otherwise), and ``facts`` go into the problem body
    (a fact named ``status`` is reported as ``current_status``: in a problem document
    ``status`` is the HTTP status).

    A refusal said in both languages passes ``zh`` and ``en``, or a :class:`Said` as its
    ``detail``: the problem's detail is then in the caller's language (``Accept-Language``),
    both when it names neither. A fact ``retry_after`` (seconds) is also sent as the
    Retry-After header."""

    reason = "refused"
    status = 409

    def __init__(
        self,
        detail: str = "",
        *,
        reason: str | None = None,
        zh: str | None = None,
        en: str | None = None,
        **facts: object,
    ) -> None:
        if zh and en:
            detail = Said(zh, en)
        elif isinstance(detail, Said):
            zh, en = detail.zh, detail.en
        super().__init__(detail)
        self.detail = detail
        self.zh, self.en = zh, en
        self.facts = facts
        if reason is not None:
            self.reason = reason


class NotFound(LookupError):
    """Something named in the request does not exist, or the caller may not see it: 404.
    Its one argument, the detail, is best a :class:`Said` (then in the caller's language)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
