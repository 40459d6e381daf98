"""The store end to end: a real HTTP server on 127.0.0.1 serving TensorFlow checkpoint files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from http_server import FileServer
from openai_checkpoint import OPENAI_FILES, Checkpoint

from gpt_tui import locations
from gpt_tui.engine import GPT2
from gpt_tui.errors import DownloadError, ModelFileError, StorageError, UnknownModelError
from gpt_tui.models import store
from gpt_tui.models.download import DownloadProgress

DATA = "/124M/model.ckpt.data-00000-of-00001"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gpt2_url(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GPT_TUI_GPT2_URL", server.url)
    return server.url


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_download_convert_load_gives_the_fabricating_models_logits(
    gpt2_url: str, server: FileServer, gpt2_checkpoint: Checkpoint
):
    events: list[DownloadProgress] = []
    loaded = store.load_model("gpt2", progress=events.append)

    assert loaded.name == "124M" and loaded.path == locations.models_dir() / "124M"
    assert loaded.hparams == {"architecture": "gpt2", **gpt2_checkpoint.hparams}
    ids = loaded.tokenizer.encode("Hello world")
    assert ids == [15496, 995]
    expected = GPT2(gpt2_checkpoint.params, gpt2_checkpoint.hparams).forward(ids)
    np.testing.assert_allclose(loaded.model.forward(ids), expected, atol=1e-5, rtol=0)

    downloaded = {e.file for e in events if e.phase == "download"}
    assert downloaded == set(OPENAI_FILES)
    assert [e.phase for e in events][-1] == "done" and any(e.phase == "convert" for e in events)
    for name in OPENAI_FILES:
        assert len(server.gets(f"/124M/{name}")) == 1
    # The TF files go once converted; what stays is the converted model and nothing half-done.
    assert sorted(p.name for p in locations.models_dir().iterdir() if p.suffix != ".lock") == [
        "124M"
    ]
    assert store.is_cached("124M") and store.status("124M") == "cached"


def test_cached_model_loads_without_network_or_tensorflow(gpt2_url: str):
    store.ensure_model("124M")
    script = (
        "import sys, time\n"
        "from gpt_tui.models.store import load_model\n"
        "loaded = load_model('124M')\n"
        "assert 'tensorflow' not in sys.modules, 'loading imported tensorflow'\n"
        "print(loaded.model.forward([15496, 995]).shape)\n"
    )
    env = {**os.environ, "GPT_TUI_GPT2_URL": closed_port_url()}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 50257)"


def test_keep_checkpoint_keeps_openais_files(gpt2_url: str):
    store.ensure_model("124M", keep_checkpoint=True)
    kept = locations.models_dir() / "124M.checkpoint"
    assert sorted(p.name for p in kept.iterdir()) == sorted(OPENAI_FILES)


@pytest.mark.parametrize("damaged", ["model.safetensors", "hparams.json", "encoder.json"])
def test_truncated_cache_file_names_the_model_and_the_repair(
    gpt2_url: str, server: FileServer, damaged: str
):
    path = store.ensure_model("124M") / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError) as info:
        store.load_model("124M")
    message = str(info.value)
    assert "the cached model 124M is damaged" in message
    assert "gpt-tui download 124M --force" in message

    store.ensure_model("124M", force=True)  # the repair the message names
    store.load_model("124M")
    assert len(server.gets(DATA)) == 2


def test_truncated_data_file_fails_conversion_and_leaves_no_model(
    gpt2_url: str, server: FileServer
):
    # Served whole, MD5 and all: the file is truncated at the source.
    server.files[DATA] = server.files[DATA][:200_000]
    with pytest.raises(ModelFileError) as info:
        store.ensure_model("124M")
    message = str(info.value)
    assert "124M" in message and "truncated" in message and "gpt-tui download 124M" in message
    left = [p.name for p in locations.models_dir().glob("*124M*") if p.suffix != ".lock"]
    assert left == []  # no model, no checkpoint, no temp dir


def test_interrupted_conversion_leaves_no_model_and_the_next_run_converts(
    gpt2_url: str, server: FileServer
):
    def interrupt(event: DownloadProgress) -> None:
        if event.phase == "convert" and event.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.ensure_model("124M", progress=interrupt)
    assert not (locations.models_dir() / "124M").exists()
    assert list(locations.models_dir().glob(".124M.*")) == []
    assert store.status("124M") == "partial"

    store.load_model("124M")
    assert len(server.gets(DATA)) == 1  # the verified downloads were kept


def test_a_failed_forced_download_keeps_the_cached_model(gpt2_url: str, server: FileServer):
    store.ensure_model("124M")
    del server.files[DATA]
    with pytest.raises(DownloadError, match="HTTP 404"):
        store.ensure_model("124M", force=True)
    store.load_model("124M")


def test_closed_port_fails_fast_pointing_to_smollm2(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GPT_TUI_GPT2_URL", closed_port_url())
    with pytest.raises(DownloadError, match="offline\\? the bundled smollm2 model"):
        store.load_model("124M")
    assert store.status("124M") == "not downloaded"


def test_unusable_home_names_the_directory_and_gpt_tui_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpt2_url: str
):
    # Root ignores chmod, so the home lies below a regular file, where nobody can write.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "file" / "home"))
    with pytest.raises(StorageError) as info:
        store.load_model("124M")
    assert str(tmp_path / "file" / "home") in str(info.value)
    assert "GPT_TUI_HOME" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555")
def test_read_only_home_still_serves_cached_models_but_cannot_download(gpt2_url: str):
    store.ensure_model("124M")
    models = locations.models_dir()
    models.chmod(0o555)
    try:
        store.load_model("124M")
        with pytest.raises(StorageError, match="GPT_TUI_HOME"):
            store.ensure_model("124M", force=True)
    finally:
        models.chmod(0o755)


def test_two_processes_download_once_and_both_succeed(gpt2_url: str, server: FileServer):
    server.bytes_per_second = 3_000_000  # a second or so for the .data file: the runs overlap
    command = [sys.executable, "-m", "gpt_tui", "download", "124M"]
    runs = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=180) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "124M is ready" in out
    for name in OPENAI_FILES:
        assert len(server.gets(f"/124M/{name}")) == 1, name
    assert any("waiting for another gpt-tui process" in err for _, err in outputs)
    store.load_model("124M")


def test_a_checkpoint_directory_by_path_is_converted_once(checkpoint_copy: Path):
    loaded = store.load_model(str(checkpoint_copy))
    assert loaded.name == "124M" and loaded.path.parent == locations.models_dir() / "local"
    assert json.loads((loaded.path / "source.json").read_text())["path"] == str(checkpoint_copy)
    first = (loaded.path / "model.safetensors").stat().st_mtime_ns

    assert store.load_model(str(checkpoint_copy)).path == loaded.path
    assert (loaded.path / "model.safetensors").stat().st_mtime_ns == first  # not converted again

    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    os.utime(data, ns=(first + 10**9, first + 10**9))  # the checkpoint changed: convert again
    again = store.load_model(str(checkpoint_copy)).path / "model.safetensors"
    assert again.stat().st_mtime_ns != first


def test_a_truncated_checkpoint_by_path_is_a_clear_error(checkpoint_copy: Path):
    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated"):
        store.load_model(str(checkpoint_copy))
    assert [p for p in (locations.models_dir() / "local").iterdir() if p.suffix != ".lock"] == []


def test_a_converted_directory_by_path_loads_as_is(tiny_model_dir: Path):
    loaded = store.load_model(str(tiny_model_dir))
    assert loaded.path == tiny_model_dir and loaded.name == tiny_model_dir.name


def test_names_and_paths_that_are_not_models(tmp_path: Path):
    with pytest.raises(UnknownModelError, match="did you mean '124M'"):
        store.load_model("125M")
    with pytest.raises(ModelFileError, match="does not exist"):
        store.load_model(str(tmp_path / "nope"))
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelFileError, match="is not a model"):
        store.load_model(str(tmp_path / "notes"))


def test_remove_model_frees_everything(gpt2_url: str):
    store.ensure_model("124M", keep_checkpoint=True)
    assert store.remove_model("gpt2") > 3_000_000
    assert store.status("124M") == "not downloaded"
    assert list(locations.models_dir().glob("124M*")) == [locations.models_dir() / "124M.lock"]
    assert store.remove_model("124M") == 0
    with pytest.raises(Exception, match="bundled"):
        store.remove_model("smollm2")
