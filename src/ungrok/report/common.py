"""What the report's sections share: the Jinja2 templates and the pieces every section uses
(a note, a figure, a table, a verdict badge, the letter legend).

Sections import this module; only the page (html.py) imports the sections, so the report has
no import cycle. Autoescape is on everywhere: a plain str is text and is escaped wherever it
lands, and markup is a `Markup` made by a template or by `markup`/`code` here. No string is
"already escaped" by convention, so a rule or cell named `<script>` or `a & b` shows as text.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ungrok.fate.classify import FATES, LETTERS
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt, record_index, record_letter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FATE_COLORS = {
    "RECOVERED": "#009E73",
    "DISPLACED": "#D55E00",
    "UNSTABLE": "#E69F00",
    "PARTIAL": "#CC79A7",
    "NEVER": "#0072B2",
}
STATUS_COLORS = {"PASS": "#009E73", "FAIL": "#D55E00", "UNSCOREABLE": "#777777"}

Html = Markup | str  # what a table cell, caption or section part may be: text (escaped) or markup


@cache
def env() -> Environment:
    """The templates under report/templates (package data), autoescaped; an undefined name is an error."""
    return Environment(loader=PackageLoader("ungrok", "report/templates"), autoescape=True,
                       undefined=StrictUndefined)


def render(name: str, **context: Any) -> Markup:
    """A template rendered with `context`; markup, since the template escaped every text value."""
    return Markup(env().get_template(name).render(**context))


@cache
def _parts() -> Any:
    return env().get_template("parts.html").module


def markup(template: str, *args: Any, **kwargs: Any) -> Markup:
    """A short fragment: `template` is trusted markup, every argument is escaped unless it is Markup."""
    return Markup(template).format(*args, **kwargs)


def code(text: Any) -> Markup:
    return markup("<code>{}</code>", text)


def join(parts: Iterable[Html], sep: str = "") -> Markup:
    """Concatenate section parts; a plain str among them is escaped, as a template would."""
    return Markup(sep).join(parts)


def note(text: Html) -> Markup:
    return Markup(_parts().note(text))


def figure(fig: Figure, alt: str, caption: Html) -> Markup:
    """A figure embedded as a PNG data URI, so the page loads nothing from anywhere."""
    from ungrok.report.figures import to_png  # matplotlib only when drawn

    src = "data:image/png;base64," + base64.b64encode(to_png(fig)).decode("ascii")
    return Markup(_parts().figure(src, alt, caption))


def table(head: Sequence[Html], rows: Sequence[Sequence[Any]], cls: str = "",
          num_cols: Sequence[int] = ()) -> Markup:
    """A table; every cell is text (escaped) unless it is Markup (a badge, <code>)."""
    return Markup(_parts().table(head, rows, cls, tuple(num_cols)))


def items(lines: Iterable[Html], cls: str = "") -> Markup:
    """A bulleted list, one sentence (or fragment) per item."""
    return Markup(_parts().items(list(lines), cls))


def fate_badge(rec: dict[str, Any] | None, seed: int, who: str | None = None) -> Markup:
    """One seed's verdict letter: coloured by fate; lower-case and outlined when the agree gate failed.
    `who` replaces "seed N" in the hover text (a model, an n-gram order)."""
    who = who if who is not None else f"seed {seed}"
    if rec is None:
        return Markup(_parts().badge("fate missing", f"{who}: no verdict", "·"))
    fate, gate = rec["fate"], rec["agree_gate"]
    title = (f"{who}: {fate}, agree gate {'passed' if gate == 'pass' else 'failed'}, conflict final "
             f"{fmt(rec['conflict_final'])} (max {fmt(rec['conflict_max'])})")
    if rec.get("cm_final") is not None:
        title += f", CM_final {fmt(rec['cm_final'], signed=True)}"
    cls = f"fate fate-{fate.lower()}" + (" gate-fail" if gate == "fail" else "")
    return Markup(_parts().badge(cls, title, record_letter(rec)))


def letters(data: ReportData, cell: str, family: str, idx: dict | None = None) -> Markup:
    """The seeds' badges for one cell and rule, in seed order."""
    idx = record_index(data) if idx is None else idx
    return join(fate_badge(idx.get((cell, s, family)), s) for s in data.seeds)


def legend() -> Markup:
    """What the letters and their styles mean."""
    return Markup(_parts().legend([(f, LETTERS[f]) for f in FATES]))
