"""A minimal raw ``llama_decode`` loop: the ceiling the engine is measured against.

It prefills one prompt for sequence 0, forks the KV to n sequences, then decodes one token per sequence
per step in a single batch, drawing each token with llama.cpp's own sampler chain exactly as the engine
configures it. No stop strings, no text, no bookkeeping: only what batched decoding itself costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..backends.llamacpp.native import ContextConfig, NativeModel
from ..types import SamplingParams


@dataclass(frozen=True)
class LoopTiming:
    """One run of the raw loop."""

    n: int
    prefill_seconds: float
    decode_seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.decode_seconds if self.decode_seconds else 0.0


def raw_decode(
    native: NativeModel, prompt: list[int], n: int, steps: int, params: SamplingParams, seed: int = 1000
) -> LoopTiming:
    """Decode ``steps`` tokens for each of ``n`` forks of ``prompt``; the context must be empty."""
    chains = [native.sampler(params, seed + s) for s in range(n)]
    try:
        t0 = time.perf_counter()
        entries = [(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)]
        if native.decode(entries) != 0:
            raise RuntimeError("prefill failed")
        for s in range(1, n):
            native.seq_copy(0, s)
        prefill = time.perf_counter() - t0
        rows = [len(prompt) - 1] * n
        t1 = time.perf_counter()
        for step in range(steps):
            picks = [native.sample(chains[s], rows[s]) for s in range(n)]
            if native.decode([(picks[s], len(prompt) + step, s, True) for s in range(n)]) != 0:
                raise RuntimeError("decode failed")
            rows = list(range(n))
        decode = time.perf_counter() - t1
    finally:
        for chain in chains:
            native.free_sampler(chain)
        for s in range(n):
            native.seq_remove(s)
    return LoopTiming(n, prefill, decode, n * steps)


def open_native(path: str, n: int, prompt_len: int, steps: int) -> NativeModel:
    """A context sized for one raw run."""
    config = ContextConfig(n_seq_max=max(n, 1), seq_len=prompt_len + steps + 256)
    return NativeModel(Path(path), config)
