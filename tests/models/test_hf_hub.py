"""Fetching from the Hub with huggingface_hub against a real HTTP server on 127.0.0.1
(`HF_ENDPOINT`): the shared cache layout, a dropped connection resumed with Range, cancel and
resume, offline, tokens, refusals before any download."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hub_http import COMMIT, HubServer
from loopback import closed_port_url

from gpt_tui.errors import DownloadError, ModelFileError, UnknownModelError
from gpt_tui.models import availability, cache, conversion, loading
from gpt_tui.models.download import DownloadCancelled, DownloadProgress
from gpt_tui.models.hf import hub
from gpt_tui.models.hf.hub_cache import cached_repos, cached_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
REPO = "HuggingFaceTB/SmolLM2-Tiny"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch, hub_cache: Path) -> Iterator[HubServer]:
    files = HubServer.files_of(FIXTURES / "smollm2")
    files["pytorch_model.bin"] = b"pickle: never fetched"
    server = HubServer(
        {
            REPO: files,
            "someone/pickle-only": {
                "config.json": files["config.json"],
                "pytorch_model.bin": b"pickle",
            },
            "someone/sharded": HubServer.files_of(FIXTURES / "llama3"),
        }
    )
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.close()


def test_fetch_writes_the_shared_cache_layout_and_loads(hub_server: HubServer, hub_cache: Path):
    events: list[DownloadProgress] = []
    loaded = loading.load_model(REPO, progress=events.append)

    snapshot = hub_cache / "models--HuggingFaceTB--SmolLM2-Tiny" / "snapshots" / COMMIT
    assert (snapshot / "model.safetensors").is_symlink()  # into blobs/, as transformers expects
    assert (hub_cache / "models--HuggingFaceTB--SmolLM2-Tiny" / "refs" / "main").read_text() == (
        COMMIT
    )
    assert cached_snapshot(REPO) == snapshot
    assert [r.repo_id for r in cached_repos()] == [REPO]
    assert not hub_server.gets("pytorch_model.bin")  # only safetensors, never the pickle
    assert loaded.name == REPO and loaded.path == cache.hf_model_path(REPO)
    downloads = [e for e in events if e.phase == "download"]
    assert downloads[-1].file == "model.safetensors" and downloads[-1].done == downloads[-1].total
    assert {e.file_count for e in downloads} == {6}
    assert availability.status(REPO) == "cached" and availability.is_cached(REPO)

    # Loaded again: from the caches, with no request at all.
    before = len(hub_server.requests)
    again = loading.load_model(REPO)
    assert len(hub_server.requests) == before
    np.testing.assert_array_equal(again.model.forward([1, 2, 3]), loaded.model.forward([1, 2, 3]))


def test_a_dropped_connection_is_resumed_with_range(hub_server: HubServer, small_chunks):
    hub_server.drop_after["model.safetensors"] = 700_000
    loading.load_model(REPO)

    gets = hub_server.gets("model.safetensors")
    assert len(gets) == 2 and gets[0].range is None
    assert gets[1].range is not None and int(gets[1].range.split("=")[1].rstrip("-")) > 0
    expected = (FIXTURES / "smollm2" / "model.safetensors").read_bytes()
    assert (cached_snapshot(REPO) / "model.safetensors").read_bytes() == expected


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub writes what it receives in chunks of DOWNLOAD_CHUNK_SIZE (10 MB, more
    than a whole fixture): small chunks make a download take several steps, as a real one does."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)


def test_cancel_then_resume_fetches_only_what_is_missing(hub_server: HubServer, small_chunks):
    cancel = threading.Event()

    def progress(event: DownloadProgress) -> None:
        if event.phase == "download" and event.file == "model.safetensors" and event.done:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        loading.load_model(REPO, progress=progress, cancel=cancel)
    assert availability.status(REPO) == "partial"
    assert not cache.hf_model_path(REPO).exists()  # nothing converted from a partial snapshot

    loading.load_model(REPO)
    assert len(hub_server.gets("tokenizer.json")) == 1  # the complete files were kept
    assert len(hub_server.gets("model.safetensors")) == 2
    assert availability.status(REPO) == "cached"


def test_sharded_repo_fetches_the_shards_its_index_names(hub_server: HubServer):
    loaded = loading.load_model("someone/sharded")
    assert loaded.hparams["rope_scaling"]["rope_type"] == "llama3"
    for shard in range(1, 6):
        assert len(hub_server.gets(f"model-0000{shard}-of-00005.safetensors")) == 1


def test_pickle_only_repo_is_refused_before_downloading(hub_server: HubServer):
    with pytest.raises(ModelFileError, match=r"only as a PyTorch pickle \(pytorch_model.bin\)"):
        loading.load_model("someone/pickle-only")
    assert not [r for r in hub_server.requests if "/resolve/" in r.path]


def test_unknown_repo_says_so(hub_server: HubServer):
    with pytest.raises(UnknownModelError, match="no model someone/nothing on http://127.0.0.1"):
        loading.load_model("someone/nothing")


def test_offline_refuses_at_once_but_serves_the_cache(
    hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        loading.load_model(REPO)
    assert hub_server.requests == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    loading.load_model(REPO)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loading.load_model(REPO).name == REPO


def test_hf_token_is_sent(hub_server: HubServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    hub.fetch(REPO)
    assert {r.authorization for r in hub_server.requests} == {"Bearer hf_test_token"}


def test_unreachable_hub_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch, hub_cache):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    with pytest.raises(DownloadError, match="cannot reach the Hub at http://127.0.0.1"):
        loading.load_model(REPO)


def test_gpt2_sizes_come_from_the_hub_without_tensorflow(
    monkeypatch: pytest.MonkeyPatch, hub_cache: Path
):
    import dataclasses

    from gpt_tui.models import catalog

    server = HubServer({"openai-community/gpt2": HubServer.files_of(FIXTURES / "gpt2")})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("GPT_TUI_GPT2_SOURCE", "hub")
    try:
        # The real 124M is 500 MB: a catalog entry of the fixture's shape stands in for it.
        with pytest.raises(ModelFileError, match="is not GPT-2 124M"):
            conversion.ensure_model("124M")
        tiny = dataclasses.replace(
            catalog.resolve("124M"),
            hparams={"n_vocab": 50257, "n_ctx": 64, "n_embd": 16, "n_head": 2, "n_layer": 2},
        )
        monkeypatch.setattr(conversion, "resolve", lambda name: tiny)
        loaded = loading.load_model("gpt2")
        assert loaded.name == "124M" and loaded.path == cache.model_path("124M")
        assert loaded.tokenizer.encode("Hello world") == [15496, 995]
        assert availability.status("124M") == "cached"
        assert len(server.gets("model.safetensors")) == 1
    finally:
        server.close()
    # Without the variable, a complete Hub copy in the cache is used: nothing to fetch.
    monkeypatch.delenv("GPT_TUI_GPT2_SOURCE")
    assert conversion.gpt2_source(catalog.resolve("124M")) == "hub"
    assert availability.spec_of("124M").source == "the Hugging Face Hub"


def test_unwritable_hugging_face_cache_names_the_variable(
    hub_server: HubServer, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    from gpt_tui.errors import StorageError

    hub_cache.parent.mkdir(parents=True, exist_ok=True)
    hub_cache.write_text("a file where the cache should be")
    with pytest.raises(StorageError, match="set HF_HUB_CACHE to a writable directory"):
        loading.load_model(REPO)


def test_download_and_rm_a_repo_from_the_command_line(hub_server: HubServer, hub_cache: Path,
                                                       capsys, tmp_path, monkeypatch):  # fmt: skip
    from gpt_tui.cli import main

    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "home"))
    assert main(["download", REPO]) == 0
    assert f"{REPO} is ready" in capsys.readouterr().out
    assert cache.hf_model_path(REPO).is_dir() and cached_snapshot(REPO) is not None
    assert main(["download", REPO]) == 0
    assert "already converted" in capsys.readouterr().out
    assert main(["rm", REPO]) == 0
    out = capsys.readouterr().out
    assert "removed gpt-tui's copy" in out and "Hugging Face cache" in out
    assert not cache.hf_model_path(REPO).exists()
    assert cached_snapshot(REPO) is not None  # the shared cache stays
    assert main(["rm", REPO]) == 0
    assert "holds no copy" in capsys.readouterr().out
