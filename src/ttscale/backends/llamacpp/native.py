"""Thin wrappers over llama-cpp-python's low-level (ctypes) API.

Everything that touches a ``llama_context`` runs on the engine thread; the model and vocabulary are
read-only after loading, so tokenizing and detokenizing are safe from any thread. The C API's own
reference is llama.cpp's ``include/llama.h``.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import GenerationError
from ...types import SamplingParams


def _lib() -> Any:
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp logs every tensor at load otherwise
    return llama_cpp


@dataclass(frozen=True)
class ContextConfig:
    """Sizes of the llama.cpp context the engine owns."""

    n_seq_max: int = 32
    """Sequence slots: running samples plus cached prefixes kept for reuse."""
    seq_len: int = 2048
    """KV cells of each slot: the longest prompt + completion a sequence can hold."""
    n_batch: int = 512
    """Most tokens per ``llama_decode`` call (prompts are prefilled in chunks of this size)."""
    n_threads: int = 0
    """CPU threads; 0 means all cores."""
    prefix_cache: bool = True
    """Reuse the KV of earlier prompts sharing a token prefix (off only to measure what it saves)."""
    max_cached: int | None = None
    """Finished sequences kept as reusable prefixes (step-wise search continues them, a judge re-reads
    them); older ones are freed at once. None keeps every one until its slot is needed. Kept streams cost
    no decode passes: compaction keeps them above the live sequences, and evicts the least recently used
    one when no free slot is left to move one out of the way (16 problems x 2 rounds of 2 samples x 256
    tokens decoded at 127.9 tok/s keeping 1 and 131.2 keeping 48, 1.04 passes per step both;
    ``benchmarks/staggered_decode.py --max-cached 1,48``; before that eviction, keeping 48 gave 101.8
    tok/s at 3.55 passes per step)."""
    compact_slots: bool = True
    """Keep live sequences on consecutive ids by moving streams into the holes finished ones leave
    (off only to measure what it saves): llama.cpp decodes each run of consecutive ids as its own pass."""


class NativeModel:
    """A loaded GGUF model, its vocabulary, and one context with a KV stream per sequence.

    Models with recurrent or hybrid memory (where llama.cpp cannot remove part of a sequence) are not
    supported: prefix reuse trims a copied stream to its shared prefix, and that trim would be ignored.
    The catalog's models are plain transformers."""

    def __init__(self, path: Path, config: ContextConfig) -> None:
        L = self.L = _lib()
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise GenerationError(f"llama.cpp could not load {path}; is it a valid GGUF file?")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        threads = config.n_threads or os.cpu_count() or 1
        cparams = L.llama_context_default_params()
        cparams.n_ctx = config.n_seq_max * config.seq_len
        cparams.n_batch = cparams.n_ubatch = config.n_batch
        cparams.n_seq_max = config.n_seq_max
        cparams.n_threads = cparams.n_threads_batch = threads
        # One KV stream per sequence, not one pool shared by all: in a unified pool every token attends
        # over every used cell of every sequence (masked), so 48 samples of 400 tokens made attention cost
        # more than the weights (measured ~40 tok/s instead of ~110). With a stream each, a token attends to
        # its own sequence only; a fork or a prefix hit copies the source stream (a memory copy, cheap).
        cparams.kv_unified = False
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise GenerationError(
                f"llama.cpp could not create a context of {config.n_seq_max} x {config.seq_len} cells"
            )
        self.mem = L.llama_get_memory(self.ctx)
        self.n_seq_max = int(L.llama_n_seq_max(self.ctx))
        self.seq_len = int(L.llama_n_ctx(self.ctx)) // self.n_seq_max
        self.batch_cap = max(config.n_batch, self.n_seq_max)
        self.batch = L.llama_batch_init(self.batch_cap, 0, 1)
        self._piece_buf = ctypes.create_string_buffer(256)

    def close(self) -> None:
        L = self.L
        if self.ctx:
            L.llama_batch_free(self.batch)
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None

    # -- vocabulary (thread-safe) --------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool | None = None, parse_special: bool = True) -> list[int]:
        """Token ids of ``text``. By default as a whole prompt: BOS if the model wants one, and special
        tokens in the text (chat markup) parsed as such."""
        raw = text.encode("utf-8")
        bos = self.add_bos if add_bos is None else add_bos
        cap = len(raw) + 16
        buf = (self.L.llama_token * cap)()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, cap, bos, parse_special)
        if n < 0:  # buffer too small: -n is the size needed
            cap = -n
            buf = (self.L.llama_token * cap)()
            n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, cap, bos, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens render as nothing)."""
        buf = ctypes.create_string_buffer(64)
        n = self.L.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.L.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(self.L.llama_vocab_is_eog(self.vocab, token))

    def token_text(self, token: int) -> str:
        """Readable text of a token, special tokens included (for template markers)."""
        raw = self.L.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(1024)
        n = self.L.llama_model_meta_val_str(self.model, key.encode(), buf, 1024)
        return buf.value.decode("utf-8", errors="replace") if n >= 0 else None

    # -- context (engine thread only) -------------------------------------------------------------------
    def decode(self, entries: list[tuple[int, int, int, bool]]) -> int:
        """Run one ``llama_decode`` over (token, position, seq id, want logits) entries; returns its code."""
        b = self.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        return int(self.L.llama_decode(self.ctx, b))

    def logits(self, row: int) -> npt.NDArray[np.float32]:
        """A writable view of the logits of batch entry ``row`` of the last decode (the sampler reads it)."""
        ptr = self.L.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def seq_copy(self, src: int, dst: int) -> None:
        """Make ``dst`` hold everything ``src`` holds (llama.cpp copies only whole streams)."""
        self.L.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    def seq_remove(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        self.L.llama_memory_seq_rm(self.mem, seq, p0, p1)

    # -- sampling ----------------------------------------------------------------------------------------------
    def sampler(self, params: SamplingParams, seed: int) -> Any:
        """A llama.cpp sampler chain for one sequence.

        Order: logit bias, top-k, temperature, top-p, min-p, then a seeded draw. Temperature comes before
        top-p and min-p as in Hugging Face and vLLM (the papers' setting); top-k commutes with temperature
        and goes first because it cuts the 150k-token vocabulary to k before anything is sorted (top-p over
        the whole vocabulary costs ~10 ms per token here, after top-k 40 ~0.1 ms).
        """
        L = self.L
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if params.logit_bias:
            arr = (L.llama_logit_bias * len(params.logit_bias))()
            for i, (tok, bias) in enumerate(params.logit_bias):
                arr[i].token, arr[i].bias = tok, bias
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_logit_bias(self.n_vocab, len(arr), arr))
        if params.greedy:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
            return chain
        if params.top_k > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_k(params.top_k))
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(params.temperature))
        if params.top_p < 1.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_min_p(params.min_p, 1))
        # llama.cpp reads 0xFFFFFFFF (LLAMA_DEFAULT_SEED) as "pick a random seed": modulo 2^32 - 1 never
        # gives it, and leaves every seed below it (all that are used in practice) as it is
        L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed % 0xFFFFFFFF))
        return chain

    def sample(self, chain: Any, row: int) -> int:
        return int(self.L.llama_sampler_sample(chain, self.ctx, row))

    def free_sampler(self, chain: Any) -> None:
        self.L.llama_sampler_free(chain)
