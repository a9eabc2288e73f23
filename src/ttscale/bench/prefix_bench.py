"""``ttscale bench prefix``: what the prefix cache saves on a step-by-step continuation.

One GSM8K problem is solved one reasoning step at a time, the way step-level search proceeds: each step
is a greedy generation that stops at a blank line, and the next prompt is the same conversation with the
steps so far as the assistant prefix. The run is done twice on fresh engines, with the prefix cache on and
off. ``prefill_saving`` compares, on the cached run's own prompts, the prompt tokens a cache-less engine
computes (all of them) with those the cache left to compute. The cache-less run measures the prefill
time; its greedy steps can drift from the cached run's after a few steps (a prefill of the whole prompt
and of a suffix round differently in llama.cpp), which ``same_steps`` reports, so its token count covers
slightly different prompts and is shown for reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.llamacpp.generator import LlamaCppGenerator
from ..backends.llamacpp.native import ContextConfig
from ..prompts import MATH_COT_SYSTEM_PROMPT
from ..types import Prompt, SamplingParams

QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her "
    "friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck "
    "egg. How much in dollars does she make every day at the farmers' market?"
)
STEP_PARAMS = SamplingParams(n=1, max_tokens=64, temperature=0.0, stop=("\n\n",))


def stepwise(path: Path, name: str, steps: int, cache: bool) -> dict[str, Any]:
    """Run ``steps`` continuation steps; count prompt tokens computed and cached."""
    config = ContextConfig(n_seq_max=8, seq_len=2048, prefix_cache=cache)
    with LlamaCppGenerator(path, name=name, config=config) as gen:
        prompt = Prompt.user(QUESTION, system=MATH_COT_SYSTEM_PROMPT)
        computed = cached = total = 0
        texts = []
        for _ in range(steps):
            c = gen.generate([prompt], STEP_PARAMS)[0][0]
            computed += c.computed_prompt_tokens
            cached += c.cached_prompt_tokens
            total += c.prompt_tokens
            texts.append(c.text)
            prompt = prompt.continued(c.text + "\n\n")
        return {
            "prompt_tokens": total,
            "computed": computed,
            "cached": cached,
            "prefill_s": round(gen.engine.stats.prefill_seconds, 4),
            "steps": texts,
        }


def run(path: Path, name: str, steps: int = 10) -> dict[str, Any]:
    with_cache = stepwise(path, name, steps, cache=True)
    without = stepwise(path, name, steps, cache=False)
    return {
        "model": name,
        "steps": steps,
        "same_steps": with_cache.pop("steps") == without.pop("steps"),
        "with_cache": with_cache,
        "without_cache": without,
        "prefill_saving": round(with_cache["prompt_tokens"] / max(1, with_cache["computed"]), 2),
        "prefill_time_saving": round(without["prefill_s"] / max(1e-9, with_cache["prefill_s"]), 2),
    }
