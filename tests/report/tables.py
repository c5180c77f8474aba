"""Read the report's tables back: per table, rows of cells, each cell's text and its verdict badges."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Cell:
    text: str = ""
    badges: list[list] = field(default_factory=list)  # [letter, classes, title] per badge


class TableParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables: list[list[list[Cell]]] = []
        self.cell: Cell | None = None
        self.badge: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell = Cell()
            self.tables[-1][-1].append(self.cell)
        elif tag == "span" and self.cell is not None and "fate" in (a.get("class") or "").split():
            self.badge = ["", a["class"].split(), a.get("title", "")]
            self.cell.badges.append(self.badge)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cell = None
        elif tag == "span":
            self.badge = None

    def handle_data(self, text):
        if self.badge is not None:
            self.badge[0] += text
        elif self.cell is not None:
            self.cell.text += text


def tables(html: str) -> list[list[list[Cell]]]:
    p = TableParser()
    p.feed(html)
    return p.tables


def table_with(html: str, header: str) -> list[dict[str, Cell]]:
    """The first table whose header row has a column named `header`, as one dict per body row."""
    for t in tables(html):
        head = [c.text.strip() for c in t[0]]
        if header in head:
            return [dict(zip(head, row, strict=True)) for row in t[1:]]
    raise AssertionError(f"no table with a {header!r} column")


def section(html: str, sid: str) -> str:
    return html.split(f'<section id="{sid}">')[1].split("</section>")[0]
