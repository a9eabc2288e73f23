"""The outcome-scorer seam: score finished samples of one problem, higher is better.

A scorer sees each sample as a :class:`Sample`, not a bare string. The design sketch had
``score(problem, candidates: Sequence[str])``, but half of the useful outcome scorers (self-certainty,
DeepConf confidence) read the *policy's own token logprobs*, which a string has lost. So a sample carries
both: ``text`` (the full response, what a judge reads) and ``completion`` (the generation behind it, with
per-token logprobs when they were asked for; ``None`` for text from elsewhere). A text-only scorer reads
``sample.text`` and ignores the rest; ``Sample("...")`` wraps a plain string.

Two more things a strategy must know *before* it samples, so the scorer declares them:

- ``policy_logprobs``: the top-k logprobs the samples must be generated with (0 when only text is read);
- ``cost(problem, sample_tokens)``: the worst-case compute scoring such samples will draw from the shared
  budget (a judge's prompts and verdict tokens; 0 for scorers that only read logprobs), so a strategy can
  hold it back instead of sampling the whole budget away and being refused at the scoring step.

:class:`DrawPlanner` puts the two together for a strategy: how many samples, of how many tokens, the
budget left pays for *and* scores.

Scorers are registered by name (:data:`ttscale.scorers.SCORERS`) as a :class:`ScorerSpec`: a factory
``build(policy, judge)`` plus whether it needs a judge, so the strategy opens a separate judge model only
when the chosen scorer calls one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..backends.base import Generator
from ..compute import span_flops
from ..errors import CapabilityError
from ..types import Completion, Problem, Prompt, TokenLogprob

if TYPE_CHECKING:
    from ..compute import Meter


@dataclass(frozen=True)
class Sample:
    """One finished response to score."""

    text: str = field(metadata={"help": "The full response: assistant prefix plus generated text."})
    completion: Completion | None = field(
        default=None,
        metadata={"help": "The generation behind the text, with token logprobs when they were asked for."},
    )
    prompt: Prompt | None = field(
        default=None,
        metadata={"help": "The prompt the response answers (a judge continuing that conversation reads it)."},
    )


class OutcomeScorer(Protocol):
    """Scores whole responses to one problem. Batched: one score per sample, in order; higher is better."""

    @property
    def policy_logprobs(self) -> int:
        """Top-k logprobs each sample's completion must carry (0: the scorer reads text only)."""
        ...

    def cost(self, problem: Problem, sample_tokens: Sequence[int]) -> tuple[int, float]:
        """Worst-case (tokens, FLOPs) that scoring samples of these lengths (policy tokens) will spend."""
        ...

    def score(self, problem: Problem, samples: Sequence[Sample]) -> list[float]:
        """One finite score per sample, in input order."""
        ...


@dataclass(frozen=True)
class ScorerSpec:
    """A registered scorer: how to build it for one solve, and whether it needs a judge model."""

    build: Callable[[Generator, Generator | None], OutcomeScorer] = field(
        metadata={"help": "(policy, judge) -> scorer; judge is None unless needs_judge."}
    )
    needs_judge: bool = field(
        default=False, metadata={"help": "Calls a judge model (the policy itself unless another is named)."}
    )
    summary: str = field(default="", metadata={"help": "One line for listings."})


def token_records(sample: Sample, who: str) -> tuple[TokenLogprob, ...]:
    """The per-token logprob records of ``sample``; :class:`CapabilityError` if it was drawn without them."""
    c = sample.completion
    if c is None or c.logprobs is None:
        raise CapabilityError(
            f"{who} reads the policy's token logprobs, but this sample was generated without them; "
            "generate with SamplingParams(logprobs=20) on a backend that supports logprobs"
        )
    return c.logprobs


@dataclass(frozen=True)
class DrawPlanner:
    """Plans draws of one prompt that leave enough budget to score every sample drawn.

    ``fits(drawn, k, t)``: would k more samples of at most t tokens, and then scoring them together with
    the samples already drawn (of ``drawn`` tokens each), fit the budget left? It adds the meter's worst
    case for the generate call (see :mod:`ttscale.compute`) to the scorer's :meth:`OutcomeScorer.cost`.
    """

    gen: Meter
    prompt_len: int
    problem: Problem
    scorer: OutcomeScorer

    def fits(self, drawn: Sequence[int], k: int, t: int) -> bool:
        tok_left, fl_left = self.gen.remaining()
        if math.isinf(tok_left) and math.isinf(fl_left):
            return True
        # the meter's reservation for one generate call: the prompt prefilled once per request
        copies = self.gen.capabilities.prefills(k)
        m, p = self.gen.model, self.prompt_len
        tokens = copies * p + k * t
        flops = copies * span_flops(m, 0, p) + k * span_flops(m, p, t)
        score_tokens, score_flops = self.scorer.cost(self.problem, [*drawn, *([t] * k)])
        return tokens + score_tokens <= tok_left and flops + score_flops <= fl_left

    def batch(self, drawn: Sequence[int], want: int, need: int, max_tokens: int) -> tuple[int, int]:
        """(k, cap): the most samples (<= want) that fit at ``need`` tokens each and the longest cap for them.

        With nothing drawn yet and nothing fitting, k is 1 with the cap that fits it (0 if none does); with
        samples drawn and nothing fitting, k is 0.
        """
        k = _largest(lambda k: self.fits(drawn, k, need), want)
        if k == 0 and drawn:
            return 0, 0
        k = max(k, 1)
        return k, _largest(lambda t: self.fits(drawn, k, t), max_tokens)


def _largest(fits: Callable[[int], bool], hi: int) -> int:
    """The largest x in 1..hi with ``fits(x)``, for ``fits`` true up to some point and false after; else 0."""
    if hi >= 1 and fits(hi):
        return hi
    lo, hi = 0, hi - 1  # invariant: lo fits (or is 0), hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo
