"""The support law as a forecast: a rule's fate from its rule:prior ratio, before training.

Thresholds come from the paper's measured cells (docs/method.md §8, §14): rules survived at
ratios 7.91 (TinyStories pronoun), 23.4 (TinyStories a/an) and 2.50 (web a/an); they
wavered at 1.04 (pronoun kill p = 0.437: 1/3 recovered) and 0.92 (a/an kill p = 0.5:
finals 0.55-0.76); they died at 0.49 and below. Hence "likely survives" at ratio >=
2.5, "likely lost" at <= 1.0, "at risk" between. It is a forecast, not a verdict:
frame-local support and how rare the probe's construction is also matter. And it is not
a tested law: the paper's two registered tests of the frequency theory (docs/method.md §9.2, F1
and F2) both failed, and these thresholds were read off its measured cells;
CAVEAT says so wherever the forecast is printed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Printed with every forecast (`ungrok support`, the report). docs/method.md §9.2: F1 wanted Spearman
# rho(support ratio, seed-mean final conflict accuracy) > 0 in every web cell (observed +0.80,
# -0.50, -0.50); F2 wanted the gender families to have the lowest web ratios (a/an 2.50 and
# negation 4.85 sat below pronoun/reflexive 6.94). Both are scored x in the paper's ledger.
CAVEAT = (
    "The paper's two registered tests of this frequency theory failed (F1: the support ratio did not "
    "rank the families' final conflict accuracy in every web cell, Spearman rho +0.80, -0.50, -0.50; "
    "F2: the gender families did not have the lowest web ratios, a/an 2.50 and negation 4.85 sat below "
    "pronoun 6.94), and the default thresholds were fitted to the paper's own measured cells: "
    "a heuristic, not a tested law."
)


class ForecastThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    survive_ratio: float = Field(2.5, gt=0)
    lost_ratio: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ForecastThresholds:
        if self.lost_ratio >= self.survive_ratio:
            raise ValueError("lost_ratio must be below survive_ratio")
        return self


def forecast(ratio: float, t: ForecastThresholds | None = None, events: int | None = None) -> str:
    """The forecast label; with `events` = 0 (no rule or prior event at all) there is no evidence."""
    t = t or ForecastThresholds()
    if events == 0:
        return "no evidence"
    if ratio >= t.survive_ratio:
        return "likely survives"
    if ratio <= t.lost_ratio:
        return "likely lost"
    return "at risk"
