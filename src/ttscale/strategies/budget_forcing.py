"""s1 budget forcing: decide how long the model thinks, then make it answer.

Muennighoff et al. 2025, "s1: Simple test-time scaling" (arXiv 2501.19393). The assistant turn opens with
a thinking phase between delimiters, followed by the answer. With ``T`` the thinking tokens generated::

    the model ends its thinking (end delimiter or EOS) while T < min_thinking_tokens
        -> suppress the end: drop the delimiter, append "Wait" and continue   (at most max_waits times)
    T reaches max_thinking_tokens
        -> force the end: append the end delimiter and "Final Answer:", then generate the answer

Strings follow s1's evaluation code: "Wait" is appended right after the thinking, with no separator; a
forced end appends a newline (unless the thinking already ends with one), the end delimiter and
"\\nFinal Answer:"; a natural end keeps the delimiter the model wrote and adds nothing. An end by EOS (a
model without thinking delimiters of its own ends its whole turn) is closed as a forced end is: the end
delimiter and "Final Answer:" are appended, so the answer phase asks for the answer instead of continuing
an ended turn (measured on Qwen2.5-Coder-0.5B: without it the answer call returned nothing and every
answer came from the thinking). Decoding is greedy (temperature 0), as in s1.

Delimiters. s1-32B was fine-tuned to think after ``<|im_start|>think``. Our instruct models (Qwen2.5-Coder,
SmolLM2) have no thinking tokens of their own; the convention they are likeliest to have seen is
DeepSeek-R1's ``<think> ... </think>``, which both tokenise as plain text. So by default the assistant
prefix opens ``<think>\\n``, the system prompt asks for reasoning between the tags, and ``</think>`` is a
stop string of the thinking calls (``think_start`` and ``think_end`` change them).

Counting. Thinking tokens are the tokens generated in the thinking phase (an appended "Wait" or delimiter
is prompt text and does not count). Every thinking call asks for at most the tokens left, so a sample
never generates more than ``max_thinking_tokens`` of them. The thinking calls run inside
:func:`~ttscale.compute.reasoning_phase`, so ``usage.reasoning_tokens`` reports them.

Context. Thinking stops where the model's context would no longer hold the closing text and an answer
of ``max_answer_tokens`` (a forced end with reason ``context``), so a large ``max_thinking_tokens`` on a
short context ends the thinking instead of failing the answer call. A round cut short by its cap can split
the end delimiter across the seam (``</`` then ``think>``); the stop string does not see it then, and the
thinking goes on (rare: only a cut can cause it).

Samples. ``n > 1`` samples think in rounds: the first call prefills the prompt once for all of them, then
each round makes one call with a prompt per still-thinking sample, asking for the fewest tokens any of
them has left (a sample cut short by that cap continues unchanged in the next round). One batched call
answers them all, and the majority of equivalent answers wins.

Budget. Before each round the thinking cap is lowered until the round's worst case plus that of the
answer call still fits the remaining budget; when not one more thinking token fits, thinking is forced to
end. The plan uses the meter's worst case (each call's whole prompt computed), so with a prefix cache a
tight budget stops thinking before it is actually spent. If even the answer call is refused, the answers
are taken from the thinking.

Defaults. ``min_thinking_tokens`` unset means every early end is suppressed (s1's ``thinking_n_ignore``);
``max_waits=2`` is one of s1's extrapolation settings (its eval commands run 1, 2, 4 and 6 suppressions).
``max_thinking_tokens=1024`` and ``max_answer_tokens=128`` are ours, sized for 0.5B models (s1-32B thinks
for up to 32k tokens).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..answers import extract_answer
from ..backends.base import ModelInfo, require
from ..compute import reasoning_phase, span_flops
from ..errors import BudgetExhausted
from ..prompts import MATH_COT_SYSTEM_PROMPT
from ..types import Completion, Prompt, Result, SamplingParams, TraceEvent
from .base import check, check_sampling, logprob_summary
from .voting import answer_numbers, vote

if TYPE_CHECKING:
    from ..compute import Meter
    from ..types import Problem

SAMPLING_TEMPERATURE = 0.7
"""Temperature used when ``n > 1`` and none is given (self-consistency's)."""

_SLACK = 4  # tokens of re-tokenisation drift allowed for when planning the answer call's prompt


@dataclass(eq=False)  # identity, not value: two samples may think alike
class _Thought:
    """One sample's thinking so far (mutable, private to one solve)."""

    prompt: Prompt
    used: int = 0
    waits: int = 0
    closing: str | None = None  # set when thinking ended: the text appended before the answer
    parts: list[Completion] = field(default_factory=list)  # what was sampled: thinking, then the answer

    @property
    def answer_prompt(self) -> Prompt:
        return self.prompt.continued(self.closing or "")


@dataclass(frozen=True)
class BudgetForcing:
    """s1 budget forcing: thinking held between a minimum and a maximum, then an answer; a vote if n > 1."""

    name: ClassVar[str] = "budget_forcing"

    max_thinking_tokens: int = field(default=1024, metadata={"help": "Most thinking tokens per sample."})
    min_thinking_tokens: int | None = field(
        default=None,
        metadata={"help": "Suppress an end of thinking before this many tokens; none: suppress every one."},
    )
    max_waits: int = field(default=2, metadata={"help": "Most times the end of thinking is suppressed."})
    max_answer_tokens: int = field(default=128, metadata={"help": "Most tokens of the answer phase."})
    think_start: str = field(default="<think>\n", metadata={"help": "Opens the assistant turn."})
    think_end: str = field(default="</think>", metadata={"help": "Ends thinking (a stop string)."})
    ignore_string: str = field(default="Wait", metadata={"help": "Appended to suppress an end of thinking."})
    final_answer: str = field(
        default="\nFinal Answer:", metadata={"help": "Appended after think_end when thinking is cut."}
    )
    n: int = field(default=1, metadata={"help": "Budget-forced samples; more than 1 are voted on."})
    temperature: float | None = field(
        default=None, metadata={"help": "Sampling temperature; none: 0 (greedy, as s1) for n=1, 0.7 for n>1."}
    )
    top_k: int = field(default=40, metadata={"help": "Keep the k most likely tokens when sampling."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, applied after top-k."})
    seed: int | None = field(default=None, metadata={"help": "Base seed of the sampled calls."})

    def __post_init__(self) -> None:
        check(
            self.max_thinking_tokens >= 1, "max_thinking_tokens", "an integer >= 1", self.max_thinking_tokens
        )
        lo = self.min_thinking_tokens
        rule = f"none or between 0 and max_thinking_tokens ({self.max_thinking_tokens})"
        check(lo is None or 0 <= lo <= self.max_thinking_tokens, "min_thinking_tokens", rule, lo)
        check(self.max_waits >= 0, "max_waits", "an integer >= 0", self.max_waits)
        check(self.max_answer_tokens >= 1, "max_answer_tokens", "an integer >= 1", self.max_answer_tokens)
        check(bool(self.think_end), "think_end", "a non-empty string (it is a stop string)", self.think_end)
        check(bool(self.ignore_string), "ignore_string", "a non-empty string", self.ignore_string)
        t = self.sampling_temperature
        check_sampling(temperature=t, top_p=self.top_p, top_k=self.top_k, n=self.n)
        check(self.n == 1 or t > 0, "temperature", "> 0 when n > 1 (greedy samples are identical)", t)
        check(self.seed is None or self.seed >= 0, "seed", "an integer >= 0 or none", self.seed)

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.n == 1 else SAMPLING_TEMPERATURE

    @property
    def min_tokens(self) -> int:
        return self.max_thinking_tokens if self.min_thinking_tokens is None else self.min_thinking_tokens

    def solve(self, problem: Problem, generator: Meter) -> Result:
        require(generator, who="budget_forcing", continue_prefix=True)  # before anything is generated
        start, end = self.think_start.strip() or "the start", self.think_end
        system = f"{MATH_COT_SYSTEM_PROMPT} Reason between {start} and {end} first, then answer."
        base = Prompt.user(problem.question, system=system, assistant_prefix=self.think_start)
        trace: list[TraceEvent] = []
        thoughts, rounds = self._think(generator, base, trace)
        answers = self._answer(generator, thoughts, rounds, trace)
        return self._result(problem, generator, thoughts, answers, trace)

    # -- thinking -------------------------------------------------------------------------------------

    def _params(self, n: int, max_tokens: int, stop: tuple[str, ...], offset: int) -> SamplingParams:
        t = self.sampling_temperature
        seed = None if self.seed is None else self.seed + offset
        return SamplingParams(n, max_tokens, t, self.top_p, self.top_k, stop=stop, seed=seed)

    def _think(self, meter: Meter, base: Prompt, trace: list[TraceEvent]) -> tuple[list[_Thought], int]:
        thoughts = [_Thought(base) for _ in range(self.n)]
        worst_closing = self.ignore_string + "\n" + self.think_end + self.final_answer
        reserve = meter.count_prompt_tokens([base.continued(worst_closing)])[0]
        reserve += _SLACK - meter.count_prompt_tokens([base])[0]
        rounds = 0
        while live := [t for t in thoughts if t.closing is None]:
            cap = min(self.max_thinking_tokens - t.used for t in live)
            room = self._context_room(meter, live, reserve)
            if room <= 0:  # the context holds no more thinking next to the closing text and the answer
                for t in live:
                    self._force_end(t, "", "context", trace)
                break
            k = self._affordable(meter, thoughts, rounds == 0, min(cap, room), reserve)
            try:
                outs = self._round(meter, live, rounds == 0, k, rounds) if k > 0 else None
            except BudgetExhausted:
                outs = None
            if outs is None:  # not one more thinking token fits next to the answer
                for t in live:
                    self._force_end(t, "", "budget", trace)
                break
            for t, c in zip(live, outs, strict=True):
                self._advance(thoughts.index(t), t, c, trace)  # index by identity (eq=False)
            rounds += 1
        return thoughts, rounds

    def _round(self, meter: Meter, live: list[_Thought], first: bool, k: int, rnd: int) -> list[Completion]:
        with reasoning_phase():
            if first:  # one prompt, n samples: the prompt is prefilled once
                return meter.generate([live[0].prompt], self._params(self.n, k, (self.think_end,), 0))[0]
            params = self._params(1, k, (self.think_end,), rnd * self.n)
            return [group[0] for group in meter.generate([t.prompt for t in live], params)]

    def _advance(self, index: int, t: _Thought, c: Completion, trace: list[TraceEvent]) -> None:
        """Apply the s1 rules to one thinking segment of sample ``index``."""
        t.used += len(c.token_ids)
        t.parts.append(c)
        ended = c.finish_reason != "length"  # the model tried to end: delimiter, EOS or a criterion
        wait = ended and t.used < self.min_tokens and t.waits < self.max_waits
        wait = wait and t.used < self.max_thinking_tokens  # a Wait with no tokens left could not be used
        data = {"sample": index, "tokens": len(c.token_ids), "thinking_tokens": t.used}
        reason = c.finish_reason if c.finish_reason != "stop" else "end_delimiter"
        trace.append(TraceEvent("think", {**data, "ended_by": reason, "wait_appended": wait}))
        if wait:
            t.waits += 1
            t.prompt = t.prompt.continued(c.text + self.ignore_string)
        elif ended and c.finish_reason == "stop":  # accepted: the model's own delimiter goes back in
            t.prompt, t.closing = t.prompt.continued(c.text), self.think_end
        elif ended:  # accepted end by EOS or a criterion: close the thinking and ask for the answer
            self._close(t, c.text)
        elif t.used >= self.max_thinking_tokens:
            self._force_end(t, c.text, "max_thinking_tokens", trace)
        else:  # cut by this round's shared cap or by the meter: continue as it is next round
            t.prompt = t.prompt.continued(c.text)

    def _close(self, t: _Thought, text: str) -> None:
        """End the thinking after ``text``: the end delimiter and "Final Answer:" follow it."""
        t.prompt = t.prompt.continued(text)
        newline = "" if t.prompt.assistant_prefix.endswith("\n") else "\n"
        t.closing = newline + self.think_end + self.final_answer

    def _force_end(self, t: _Thought, text: str, reason: str, trace: list[TraceEvent]) -> None:
        self._close(t, text)
        trace.append(
            TraceEvent("force_end", {"reason": reason, "thinking_tokens": t.used, "appended": t.closing})
        )

    # -- budget ---------------------------------------------------------------------------------------

    def _context_room(self, meter: Meter, live: list[_Thought], reserve: int) -> int:
        """Most thinking tokens the model's context still holds for every live sample, leaving room for
        the closing text and the answer (unbounded when the context is unknown)."""
        n_ctx = meter.model.n_ctx
        if n_ctx <= 0:
            return self.max_thinking_tokens
        lens = meter.count_prompt_tokens([t.prompt for t in live])
        return min(n_ctx - length - reserve - self.max_answer_tokens for length in lens)

    def _affordable(self, meter: Meter, thoughts: list[_Thought], first: bool, cap: int, reserve: int) -> int:
        """Largest thinking cap <= ``cap`` whose round, plus the answer call after it, fits the budget."""
        tok_left, fl_left = meter.remaining()
        if math.isinf(tok_left) and math.isinf(fl_left):
            return cap
        live = [t for t in thoughts if t.closing is None]
        done = [t.answer_prompt for t in thoughts if t.closing is not None]
        done_lens = meter.count_prompt_tokens(done) if done else []
        lens = meter.count_prompt_tokens([live[0].prompt] if first else [t.prompt for t in live])
        prefills = meter.capabilities.prefills(self.n)

        def fits(k: int) -> bool:
            think = [(lens[0], prefills, self.n, k)] if first else [(p, 1, 1, k) for p in lens]
            grown = [p + k + reserve for p in (lens * self.n if first else lens)]
            answer = [(p, 1, 1, self.max_answer_tokens) for p in grown + done_lens]
            tokens, flops = _worst_case(meter.model, think + answer)
            return tokens <= tok_left and flops <= fl_left

        lo, hi = 0, cap  # invariant: lo fits (or is 0), hi + 1 does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        return lo

    # -- answer ---------------------------------------------------------------------------------------

    def _answer(
        self, meter: Meter, thoughts: list[_Thought], rounds: int, trace: list[TraceEvent]
    ) -> list[str]:
        params = self._params(1, self.max_answer_tokens, (), rounds * self.n)
        try:
            outs = [g[0] for g in meter.generate([t.answer_prompt for t in thoughts], params)]
        except BudgetExhausted:
            if not any(t.used for t in thoughts):
                raise  # nothing generated at all: there is no answer to give
            note = "the budget could not pay for the answer phase; answers come from the thinking"
            trace.append(TraceEvent("stop", {"reason": "budget", "note": note}))
            return [""] * len(thoughts)
        for i, c in enumerate(outs):
            thoughts[i].parts.append(c)
            data = {"sample": i, "tokens": len(c.token_ids), "finish_reason": c.finish_reason}
            trace.append(TraceEvent("answer", {**data, "text": c.text}))
        return [c.text for c in outs]

    def _result(
        self,
        problem: Problem,
        meter: Meter,
        thoughts: list[_Thought],
        answers: list[str],
        trace: list[TraceEvent],
    ) -> Result:
        texts, values = [], []
        for i, (t, answer) in enumerate(zip(thoughts, answers, strict=True)):
            text = t.answer_prompt.assistant_prefix + answer
            tail = (t.closing or "") + answer  # where s1 puts the answer; thinking is the fallback
            ext = extract_answer(tail, problem.answer_kind)
            source = "answer"
            if ext.value is None:
                ext, source = extract_answer(text, problem.answer_kind), "thinking"
            texts.append(text)
            values.append(ext.value)
            data = {"index": i, "text": text, "answer": ext.value, "method": ext.method, "from": source}
            counts = {"thinking_tokens": t.used, "waits": t.waits}
            summary = logprob_summary(t.parts)
            data |= {"voted": ext.value is not None, **counts} | ({"logprob": summary} if summary else {})
            trace.append(TraceEvent("sample", data))
        outcome = vote(texts, values, problem.answer_kind, numbers=answer_numbers(problem))
        trace.append(outcome.event(samples=self.n, requested=self.n))
        best = outcome.best
        return Result(
            answer=best.answer if best else None,
            response=texts[best.samples[0]] if best else texts[0],
            strategy=self.name,
            model=meter.model.name,
            candidates=outcome.candidates,
            confidence=best.votes / self.n if best and self.n > 1 else None,
            trace=tuple(trace),
        )


def _worst_case(model: ModelInfo, calls: Iterable[tuple[int, int, int, int]]) -> tuple[int, float]:
    """(tokens, FLOPs) of calls ``(prompt length, prefills, samples, tokens per sample)`` in the worst case.

    The meter's rule: every prompt fully computed ``prefills`` times, every sample running to its cap.
    """
    tokens, flops = 0, 0.0
    for length, prefills, samples, gen in calls:
        tokens += prefills * length + samples * gen
        flops += prefills * span_flops(model, 0, length) + samples * span_flops(model, length, gen)
    return tokens, flops
