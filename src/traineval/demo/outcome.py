"""What one claim's experiment yields: a verdict computed from its measurements.

An experiment returns an :class:`Outcome` (the numbers and the verdict); the registry
(:mod:`traineval.demo.claims`) adds the claim's words to make a :class:`Claim`, which the
report, ``results.json`` and the figures read.

>>> outcome = Outcome("on 10 ones: 5 dropped", HOLDS, {"dropped": 5})
>>> claim = Claim("C9", "an example", "the article says", "exactly", outcome.measurement, outcome.verdict,
...               outcome.values)
>>> claim.to_json()["verdict"], sorted(claim.to_json())
('holds', ['article', 'exact', 'id', 'in_article', 'measurement', 'title', 'values', 'verdict'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DIFFERS", "FAILS", "HOLDS", "VERDICTS", "Claim", "Outcome", "Verdict"]

Verdict = Literal["holds", "differs", "fails"]
HOLDS: Verdict = "holds"  # the measurement bears out the statement
DIFFERS: Verdict = "differs"  # it shows a measurable difference from the statement as written
FAILS: Verdict = "fails"  # the expected behaviour did not show at all: PyTorch changed, worth a bug report
VERDICTS: tuple[Verdict, ...] = (HOLDS, DIFFERS, FAILS)


@dataclass
class Outcome:
    """One experiment's result: the measurement in words, the verdict computed from it, the numbers.

    ``values`` holds the numbers (JSON-ready, written to ``results.json``); ``plot`` holds arrays for
    the figures and is not written.
    """

    measurement: str
    verdict: Verdict
    values: dict[str, Any] = field(default_factory=dict)
    plot: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Claim:
    """One claim (or trap beyond the article) reproduced: its words, the measurement, the verdict.

    ``in_article`` is false for the traps the article does not mention (T1, T2); their
    ``article`` field then holds the statement they test instead of a quote.
    """

    id: str
    title: str
    article: str
    exact: str
    measurement: str
    verdict: Verdict
    values: dict[str, Any] = field(default_factory=dict)
    plot: dict[str, Any] = field(default_factory=dict, repr=False)
    in_article: bool = True

    def to_json(self) -> dict[str, Any]:
        """The claim as written to ``results.json`` (everything but ``plot``)."""
        return {
            "id": self.id,
            "title": self.title,
            "article": self.article,
            "in_article": self.in_article,
            "exact": self.exact,
            "measurement": self.measurement,
            "verdict": self.verdict,
            "values": self.values,
        }
