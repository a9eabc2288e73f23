"""Facts read from a GGUF file's header: sizes for FLOPs accounting, and the chat template.

Parameter counts come from the tensors themselves, not from a table: ``n_params`` is every weight a token
touches, which is everything except the input embedding (``token_embd.weight``, a lookup). When the
output head is tied to the embedding (no ``output.weight`` tensor) its vocab x d_model multiply still
happens on every token, so it is added back.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError


@dataclass(frozen=True)
class GGUFFacts:
    """What ttscale needs to know about a GGUF model file."""

    arch: str
    """``general.architecture``, e.g. ``qwen2`` or ``llama``."""
    n_layers: int
    """Transformer blocks."""
    d_model: int
    """Embedding width."""
    n_ctx_train: int
    """Context length the model was trained for."""
    vocab_size: int
    """Number of tokens in the vocabulary."""
    n_params_total: int
    """All tensor elements in the file."""
    n_params: int
    """Per-token weights: total minus the input embedding, plus the output head if tied."""
    tied_head: bool
    """True when there is no separate ``output.weight`` tensor."""
    chat_template: str | None
    """``tokenizer.chat_template`` (Jinja), if present."""


_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Sequential little-endian reads over a memory map. GGUF spec: ggml-org/ggml docs/gguf.md."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos = buf, 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        """Read (or, when not ``keep``, skip cheaply) one value of GGUF type ``vtype``."""
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.scalar("<I"), self.scalar("<Q")
            if itype in _SCALAR and not keep:
                self.pos += struct.calcsize(_SCALAR[itype]) * count
                return count
            items = [self.value(itype, keep) for _ in range(count)]
            return items if keep else count
        return self.scalar(_SCALAR[vtype])


def read_gguf_facts(path: str | Path) -> GGUFFacts:
    """Read :class:`GGUFFacts` from the header of ``path`` (memory-mapped; tensor data is not read).

    A small reader of our own: the ``gguf`` package decodes every vocabulary string and takes ~9 s on a
    151k-token vocabulary, this skips them and takes well under a second.
    """
    try:
        return _read(path)
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as e:  # empty, truncated, not GGUF
        raise ConfigError(
            f"{path} is not a readable GGUF model file ({e}); pass a .gguf file or a catalog model name "
            "(`ttscale models list`)"
        ) from None


def _read(path: str | Path) -> GGUFFacts:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf)
        if buf[:4] != b"GGUF":
            raise ValueError("it does not start with the GGUF magic bytes")
        cur.pos = 8  # magic, version
        n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.scalar("<I")
            meta[key] = cur.value(vtype, keep=not key.startswith("tokenizer.ggml."))
        sizes: dict[str, int] = {}
        for _ in range(n_tensors):
            name = cur.string()
            dims = [cur.scalar("<Q") for _ in range(cur.scalar("<I"))]
            cur.pos += 4 + 8  # ggml type, data offset
            sizes[name] = math.prod(dims)
    return _facts(meta, sizes)


def _facts(meta: dict[str, Any], sizes: dict[str, int]) -> GGUFFacts:
    arch = str(meta.get("general.architecture", ""))
    d_model = int(meta.get(f"{arch}.embedding_length", 0))
    embd = sizes.get("token_embd.weight", 0)
    tied = "output.weight" not in sizes
    total = sum(sizes.values())
    template = meta.get("tokenizer.chat_template")
    return GGUFFacts(
        arch=arch,
        n_layers=int(meta.get(f"{arch}.block_count", 0)),
        d_model=d_model,
        n_ctx_train=int(meta.get(f"{arch}.context_length", 0)),
        vocab_size=embd // d_model if d_model else 0,
        n_params_total=total,
        n_params=total - embd + (embd if tied else 0),
        tied_head=tied,
        chat_template=template if isinstance(template, str) else None,
    )
