"""The service certificate as a PDF (issue 21, part 2): Chinese first, English beside, the
figures, the list of service and the verification code. reportlab's STSong-Light is one of
the Adobe Asian fonts every PDF reader has, so the Chinese needs no font file here."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from jifen.tasks.domain.jobs import CATEGORY_LABELS, Category

FONT = "STSong-Light"
pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _category(code: str) -> str:
    if code in CATEGORY_LABELS:
        zh, en = CATEGORY_LABELS[Category(code)]
        return f"{zh} {en}"
    return code


def render(cert: Mapping[str, Any], check_url: str) -> bytes:
    """One A4 page (more when the list of service is long)."""
    out = io.BytesIO()
    pdf = Canvas(out, pagesize=A4, invariant=True)
    pdf.setTitle(f"志愿服务证明 {cert['code']}")
    pdf.setAuthor(str(cert["org_name"]))
    _, height = A4
    y = height - 30 * mm

    def line(text: str, size: float = 11, x: float = 25 * mm, step: float = 7 * mm) -> None:
        nonlocal y
        if y < 25 * mm:
            pdf.showPage()
            y = height - 25 * mm
        pdf.setFont(FONT, size)
        pdf.drawString(x, y, text)
        y -= step

    line("志愿服务证明", 22, step=9 * mm)
    line("Certificate of volunteer service", 13, step=12 * mm)
    name = cert["display_name"] or cert["account_id"]
    line(f"兹证明 {name}（账户 {cert['account_id']}）在 {cert['org_name']} 参加志愿服务：")
    line(
        f"This certifies that {name} (account {cert['account_id']}) served with "
        f"{cert['org_name']}:",
        10,
        step=10 * mm,
    )
    until = cert["ends_on"]
    line(f"期间 Period：{cert['starts_on']} 至 {until}（不含 exclusive）")
    hours = int(cert["service_minutes"]) / 60
    line(f"服务时长 Service hours：{hours:.1f} 小时 hours")
    line(f"服务次数 Services：{cert['jobs']} 次")
    line(f"所获积分 Points：{cert['points']} 分", step=10 * mm)
    line("服务记录 Record of service", 12, step=8 * mm)
    for item in cert["lines"]:
        when = str(item["verified_at"])[:10]
        minutes = int(item["minutes"])
        line(
            f"{when}  {item['title'][:40]}  {_category(item['category'])}  "
            f"{minutes / 60:.1f} h  {item['points']} 分",
            9,
            step=5.5 * mm,
        )
    y -= 6 * mm
    line(f"核验码 Verification code：{cert['code']}", 12)
    line(f"核验 Check：{check_url}", 9)
    line(f"签发 Issued {str(cert['issued_at'])[:19]} UTC，签发人 by {cert['issued_by']}", 9)
    pdf.showPage()
    pdf.save()
    return out.getvalue()
