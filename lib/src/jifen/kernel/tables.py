"""A table a person downloads (issue 21: reports and statements as CSV and Excel): the same
rows as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese) or XLSX
(xlsxwriter), with the header row bold and frozen. One place, so every report downloads the
same way."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Literal

import xlsxwriter
from fastapi import Response

Format = Literal["json", "csv", "xlsx"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def xlsx_bytes(rows: Sequence[Sequence[object]], sheet: str) -> bytes:
    """One sheet: the first row the header (bold, frozen), numbers kept as numbers."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_numbers": False})
    ws = book.add_worksheet(sheet[:31])
    bold = book.add_format({"bold": True})
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if r == 0:
                ws.write_string(r, c, str(value), bold)
            elif isinstance(value, bool) or value is None:
                ws.write_string(r, c, "" if value is None else str(value))
            elif isinstance(value, int | float):
                ws.write_number(r, c, value)
            else:
                ws.write_string(r, c, str(value))
    if rows:
        ws.freeze_panes(1, 0)
        ws.set_column(0, len(rows[0]) - 1, 16)
    book.close()
    return out.getvalue()


def table_response(
    rows: Sequence[Sequence[object]],
    *,
    name: str,
    format: Literal["csv", "xlsx"],
) -> Response:
    """``rows`` (the header first) as a download named ``name``.csv or ``name``.xlsx."""
    if format == "xlsx":
        body, media = xlsx_bytes(rows, name), XLSX
    else:
        body, media = csv_bytes(rows), "text/csv; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )
