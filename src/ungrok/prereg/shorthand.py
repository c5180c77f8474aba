"""One-line prediction expressions (`expr:`), parsed into the same fields as the YAML forms.

    FAMILY[, FAMILY] is|has TEST in QUORUM seeds of cell(s) CELLS [pooled|each|any]
        pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts
        pronoun_gender_ref has cm_final < 0 in all seeds of cell web
        pronoun_gender_ref has within(1) in >= 2/3 seeds of cell web
    mean MEASURE of FAMILY in cell(s) CELLS CMP NUMBER
        mean cm_final of pronoun_gender_ref in cell web < 0
    MEASURE of FAMILY in cell A CMP in cell B in QUORUM seeds        (paired by seed)
    mean MEASURE of FAMILY in cell A CMP in cell B                   (cell means)
        conflict_final of pronoun_gender_ref in cell web_packed <= in cell web_dn1.5 in >= 2/3 seeds
    spearman(X, Y) over cells CELLS CMP NUMBER
    spearman(X, Y) over families F1, F2, F3 in cell(s) CELLS CMP NUMBER
        spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8
    mean MEASURE of FAMILY decreases|increases [strictly] over cells C1, C2, ... [by ATTR]

Cell names may be glob patterns (`kill_*`); quote a name that is a keyword or has spaces.
"""

from __future__ import annotations

from typing import Any

from ungrok.prereg.grammar import parse


def parse_shorthand(text: str, what: str = "prediction expression") -> dict[str, Any]:
    """The fields of one prediction (kind, family, cells, test, ...) from its one-line form."""
    return parse(text, "shorthand", what)  # type: ignore[no-any-return]
