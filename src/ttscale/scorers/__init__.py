"""Outcome scorers: score finished samples of a problem (higher is better), found by name in :data:`SCORERS`.

- ``llm_judge``: P(Yes) of a judge model asked "Is this solution correct?" (the policy itself or another).
- ``followup_judge``: the same question asked as the next turn of the solution's own conversation, so a
  self-judge on a prefix cache reads the solution from cache.
- ``self_certainty``: mean KL(uniform || p) of the policy's own tokens (Kang et al. 2025).
- ``confidence``: DeepConf lowest group confidence of the policy's own tokens (Fu et al. 2025).

Entries are lazy (``"module:attr"``) :class:`ScorerSpec` objects; see :mod:`ttscale.scorers.base` for the
:class:`OutcomeScorer` protocol and why a scorer sees a :class:`Sample` rather than a string.
"""

from __future__ import annotations

from ..registry import Registry
from .base import DrawPlanner, OutcomeScorer, Sample, ScorerSpec

SCORERS: Registry[ScorerSpec] = Registry("scorer")
"""Scorer name to its :class:`ScorerSpec` (a factory ``build(policy, judge)``)."""

SCORERS.register("llm_judge", "ttscale.scorers.llm_judge:SPEC")
SCORERS.register("followup_judge", "ttscale.scorers.llm_judge:FOLLOWUP_SPEC")
SCORERS.register("self_certainty", "ttscale.scorers.self_certainty:SPEC")
SCORERS.register("confidence", "ttscale.scorers.confidence:SPEC")

__all__ = ["SCORERS", "DrawPlanner", "OutcomeScorer", "Sample", "ScorerSpec"]
