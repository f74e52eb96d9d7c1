"""Report downloads (issue 21, part 2): the same rows as CSV a spreadsheet reads in Chinese,
and as an XLSX workbook with numbers kept as numbers."""

from __future__ import annotations

import csv
import io
import re
import zipfile

from jifen.kernel.tables import XLSX, csv_bytes, table_response, xlsx_bytes

ROWS = [("社区 community_id", "积分 points"), ("蓬莱网格", 90), ("合计 total", 90)]


def test_csv_starts_with_a_byte_order_mark_and_keeps_the_chinese() -> None:
    body = csv_bytes(ROWS)
    assert body.startswith("\ufeff".encode())
    assert list(csv.reader(io.StringIO(body.decode("utf-8-sig")))) == [
        ["社区 community_id", "积分 points"], ["蓬莱网格", "90"], ["合计 total", "90"]
    ]  # fmt: skip


def test_xlsx_is_a_workbook_with_the_strings_shared_and_the_numbers_numeric() -> None:
    book = zipfile.ZipFile(io.BytesIO(xlsx_bytes(ROWS, "activity")))
    strings = book.read("xl/sharedStrings.xml").decode()
    assert "社区 community_id" in strings and "合计 total" in strings
    sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert re.search(r'<c r="B2"[^>]*><v>90</v></c>', sheet)  # a number, not the text "90"
    assert "<pane" in sheet  # the header row stays in view


def test_a_download_is_named_and_typed_by_its_format() -> None:
    r = table_response(ROWS, name="activity-2026-11", format="xlsx")
    assert r.media_type == XLSX
    assert r.headers["content-disposition"] == 'attachment; filename="activity-2026-11.xlsx"'
    assert table_response(ROWS, name="x", format="csv").media_type.startswith("text/csv")
