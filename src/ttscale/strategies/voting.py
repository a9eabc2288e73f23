"""What the voting strategies share: drawing samples of one prompt under a budget, and voting over them.

Self-consistency, adaptive consistency, DeepConf (and budget forcing's final vote) all sample one prompt
in batches and take a (weighted) vote over equivalent answers, so the two halves live here once.

Drawing (:func:`draw_batch`, :func:`draw`). A call asks for up to ``want`` more samples. The first call
asks for as many full-length samples (``max_tokens`` each) as the remaining budget pays for, or, if it
pays for none, for one sample that the meter shortens to fit (or refuses with ``BudgetExhausted``, which
propagates: a strategy cannot answer without one sample). Later calls plan at the length of the longest
sample seen so far, since real samples usually stop well before ``max_tokens``; when not one more such
sample fits, the call returns nothing and the strategy stops drawing. Sample ``i`` of a solve keeps the
seed ``seed + i`` across calls, so a seed reproduces the samples however they were batched.

Voting (:func:`vote`). ``answer = argmax_a sum_i w_i [a_i ~ a]`` over the samples allowed to vote, with
``~`` the answer equivalence of :func:`ttscale.answers.group_answers` (ties go to the answer seen first).
Samples without an extractable answer abstain. If no voter has one, the vote falls back to the normalised
last line of each voter's text, with the same weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..answers import group_answers
from ..errors import BudgetExhausted, CapabilityError
from ..types import Candidate, Completion, Prompt, SamplingParams, TraceEvent

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

ParamsFor = Callable[[int, int], SamplingParams]
"""``params_for(k, first)``: the sampling parameters of a call drawing ``k`` samples, the first of which
is sample number ``first`` of the solve (so its seed is ``seed + first``)."""

_SPACE = re.compile(r"\s+")


# -- drawing --------------------------------------------------------------------------------------------


def affordable(generator: Meter, prompt: Prompt, params_for: ParamsFor, want: int, need: int) -> int:
    """Most samples (<= want) the remaining budget pays for at ``need`` tokens each; may be 0."""

    def fits(k: int) -> bool:
        return generator.max_tokens_affordable([prompt], params_for(k, 0)) >= need

    if fits(want):
        return want
    lo, hi = 0, want - 1  # invariant: lo fits (or is 0), hi + 1 does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def draw_batch(
    generator: Meter, prompt: Prompt, params_for: ParamsFor, want: int, drawn: Sequence[Completion]
) -> list[Completion]:
    """Up to ``want`` more samples of ``prompt``, given the ``drawn`` ones; ``[]`` when the budget is spent.

    With nothing drawn yet, a budget too small for one sample raises :class:`BudgetExhausted`.
    """
    full = params_for(1, 0).max_tokens
    need = min(full, max(1, *(len(c.token_ids) for c in drawn))) if drawn else full
    k = affordable(generator, prompt, params_for, want, need)
    if k == 0 and drawn:
        return []
    try:
        # k == 0 with nothing drawn: one sample that the meter shortens to fit, or refuses
        return generator.generate([prompt], params_for(max(k, 1), len(drawn)))[0]
    except BudgetExhausted:
        if not drawn:
            raise
        return []


def draw(
    generator: Meter, prompt: Prompt, params_for: ParamsFor, total: int, drawn: Sequence[Completion] = ()
) -> list[Completion]:
    """New samples until there are ``total`` counting ``drawn``, in as few calls as the budget allows.

    Returns only the new samples: fewer than asked when the budget ran out.
    """
    out = list(drawn)
    while len(out) < total:
        batch = draw_batch(generator, prompt, params_for, total - len(out), out)
        if not batch:
            break
        out.extend(batch)
    return out[len(drawn) :]


def budget_stop_event(drawn: int, requested: int) -> TraceEvent:
    """The trace record of a budget that cut the drawing short."""
    return TraceEvent(
        "stop",
        {
            "reason": "budget",
            "drawn": drawn,
            "requested": requested,
            "note": f"the budget paid for {drawn} of {requested} samples",
        },
    )


def require_logprobs(generator: Meter, *, who: str, top: int) -> None:
    """Raise :class:`CapabilityError` unless the backend gives logprobs with ``top`` alternatives.

    ``top == 0`` asks for the sampled tokens' own logprobs only: any backend that gives logprobs at all
    (``capabilities.logprobs > 0``) does. :func:`~ttscale.backends.base.require` cannot say this, since
    there ``logprobs=0`` means "not needed".
    """
    have = generator.capabilities.logprobs
    if have >= max(top, 1):
        return
    what = f"top-{top} logprobs" if top else "the logprobs of its sampled tokens"
    raise CapabilityError(
        f"{who} needs {what}, which model {generator.model.name!r} on this backend does not give "
        f"(it gives {'none' if have == 0 else f'top-{have}'}). Use the embedded llama.cpp backend or a "
        "backend that declares logprobs."
    )


# -- voting ---------------------------------------------------------------------------------------------


def answer_numbers(problem: Problem) -> tuple[int, ...] | None:
    """A Game-of-24 puzzle's numbers (two valid solutions of one puzzle are one answer); else None."""
    numbers = problem.metadata.get("numbers")
    if problem.answer_kind != "game24" or numbers is None:
        return None
    return tuple(int(n) for n in numbers)


@dataclass(frozen=True)
class Vote:
    """The outcome of a vote: candidates best first, and how they were reached."""

    candidates: tuple[Candidate, ...]
    """Distinct answers, heaviest first."""
    method: Literal["answer", "final_line"]
    """``answer`` (extracted answers) or ``final_line`` (the fallback when no voter had one)."""
    abstained: tuple[int, ...]
    """Voters without an extractable answer."""
    note: str
    """Why some samples did not count, in words."""

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def event(self, **extra: Any) -> TraceEvent:
        """The ``vote`` trace record, with strategy-specific ``extra`` fields."""
        return TraceEvent(
            "vote",
            {
                "method": self.method,
                "tally": {c.answer: c.votes for c in self.candidates},
                "winner": self.best.answer if self.best else None,
                **extra,
                "abstained": list(self.abstained),
                "note": self.note,
            },
        )


def vote(
    texts: Sequence[str],
    answers: Sequence[str | None],
    kind: str,
    *,
    weights: Sequence[float] | None = None,
    numbers: Sequence[int] | None = None,
    voters: Sequence[int] | None = None,
) -> Vote:
    """Vote over ``answers`` (one per sample; None abstains), weighted by ``weights`` (default 1 each).

    Only the samples listed in ``voters`` (default: all) take part; ``Candidate.samples`` index into the
    full sequences. ``texts`` are the generated texts, for the final-line fallback.
    """
    allowed = set(range(len(answers)) if voters is None else voters)
    ballots = [a if i in allowed else None for i, a in enumerate(answers)]
    abstained = tuple(i for i in sorted(allowed) if answers[i] is None)
    groups = group_answers(ballots, kind, weights, numbers=numbers)
    candidates = tuple(Candidate(g.answer, g.weight, tuple(g.members)) for g in groups)
    method: Literal["answer", "final_line"] = "answer"
    notes = [f"samples {list(abstained)} had no extractable answer and did not vote"] if abstained else []
    if not candidates:
        shown = [t if i in allowed else "" for i, t in enumerate(texts)]
        method, candidates = "final_line", final_line_vote(shown, weights)
        notes.append("no sample had an extractable answer; voted over normalised final lines")
    return Vote(candidates, method, abstained, "; ".join(notes))


def borda_votes(scores: Sequence[float], power: float) -> list[float]:
    """Kang et al. 2025's Borda votes: ``(N - r + 1) ** power`` for the sample ranked ``r`` by score (1 the
    best of N, ties to the earlier sample), so power 0 gives every sample one vote."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    votes = [0.0] * len(scores)
    for rank, i in enumerate(order, start=1):
        votes[i] = float(len(scores) - rank + 1) ** power
    return votes


def final_line(text: str) -> str:
    """The last non-empty line of ``text``, stripped."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _normalise_line(line: str) -> str:
    return _SPACE.sub(" ", line).strip().strip(".").strip().casefold()


def final_line_vote(texts: Sequence[str], weights: Sequence[float] | None = None) -> tuple[Candidate, ...]:
    """(Weighted) majority over normalised last lines; ties go to the line seen first. Empty texts abstain."""
    members: dict[str, list[int]] = {}
    shown: dict[str, str] = {}
    for i, text in enumerate(texts):
        line = final_line(text)
        key = _normalise_line(line)
        if not key:
            continue
        members.setdefault(key, []).append(i)
        shown.setdefault(key, line)
    weight: Mapping[str, float] = {
        k: float(sum(1.0 if weights is None else weights[i] for i in idx)) for k, idx in members.items()
    }
    ranked = sorted(members, key=lambda k: (-weight[k], members[k][0]))
    return tuple(Candidate(shown[k], weight[k], tuple(members[k])) for k in ranked)
