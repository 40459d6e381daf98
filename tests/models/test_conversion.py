"""Conversion end to end: a real HTTP server on 127.0.0.1 serving TensorFlow checkpoint files,
converted once under the model's lock; a checkpoint directory given by path, once per version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from http_server import FileServer
from loopback import closed_port_url
from openai_checkpoint import OPENAI_FILES, Checkpoint

from gpt_tui import locations
from gpt_tui.engine import GPT2
from gpt_tui.errors import DownloadError, ModelFileError, StorageError
from gpt_tui.models import availability, conversion, loading
from gpt_tui.models.download import DownloadProgress

DATA = "/124M/model.ckpt.data-00000-of-00001"
REPO = Path(__file__).resolve().parents[2]


def test_download_convert_load_gives_the_fabricating_models_logits(
    gpt2_url: str, server: FileServer, gpt2_checkpoint: Checkpoint
):
    events: list[DownloadProgress] = []
    loaded = loading.load_model("gpt2", progress=events.append)

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
    assert availability.is_cached("124M") and availability.status("124M") == "cached"


def test_keep_checkpoint_keeps_openais_files(gpt2_url: str):
    conversion.ensure_model("124M", keep_checkpoint=True)
    kept = locations.models_dir() / "124M.checkpoint"
    assert sorted(p.name for p in kept.iterdir()) == sorted(OPENAI_FILES)


def test_truncated_data_file_fails_conversion_and_leaves_no_model(
    gpt2_url: str, server: FileServer
):
    # Served whole, MD5 and all: the file is truncated at the source.
    server.files[DATA] = server.files[DATA][:200_000]
    with pytest.raises(ModelFileError) as info:
        conversion.ensure_model("124M")
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
        conversion.ensure_model("124M", progress=interrupt)
    assert not (locations.models_dir() / "124M").exists()
    assert list(locations.models_dir().glob(".124M.*")) == []
    assert availability.status("124M") == "partial"

    loading.load_model("124M")
    assert len(server.gets(DATA)) == 1  # the verified downloads were kept


def test_a_failed_forced_download_keeps_the_cached_model(gpt2_url: str, server: FileServer):
    conversion.ensure_model("124M")
    del server.files[DATA]
    with pytest.raises(DownloadError, match="HTTP 404"):
        conversion.ensure_model("124M", force=True)
    loading.load_model("124M")


def test_closed_port_fails_fast_pointing_to_smollm2(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GPT_TUI_GPT2_URL", closed_port_url())
    with pytest.raises(DownloadError, match="offline\\? the bundled smollm2 model"):
        loading.load_model("124M")
    assert availability.status("124M") == "not downloaded"


def test_unusable_home_names_the_directory_and_gpt_tui_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpt2_url: str
):
    # Root ignores chmod, so the home lies below a regular file, where nobody can write.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GPT_TUI_HOME", str(tmp_path / "file" / "home"))
    with pytest.raises(StorageError) as info:
        loading.load_model("124M")
    assert str(tmp_path / "file" / "home") in str(info.value)
    assert "GPT_TUI_HOME" in str(info.value)


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
    loading.load_model("124M")


def test_a_checkpoint_directory_by_path_is_converted_once(checkpoint_copy: Path):
    loaded = loading.load_model(str(checkpoint_copy))
    assert loaded.name == "124M" and loaded.path.parent == locations.models_dir() / "local"
    assert json.loads((loaded.path / "source.json").read_text())["path"] == str(checkpoint_copy)
    first = (loaded.path / "model.safetensors").stat().st_mtime_ns

    assert loading.load_model(str(checkpoint_copy)).path == loaded.path
    assert (loaded.path / "model.safetensors").stat().st_mtime_ns == first  # not converted again

    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    os.utime(data, ns=(first + 10**9, first + 10**9))  # the checkpoint changed: convert again
    again = loading.load_model(str(checkpoint_copy)).path / "model.safetensors"
    assert again.stat().st_mtime_ns != first


def test_a_truncated_checkpoint_by_path_is_a_clear_error(checkpoint_copy: Path):
    data = checkpoint_copy / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="truncated"):
        loading.load_model(str(checkpoint_copy))
    assert [p for p in (locations.models_dir() / "local").iterdir() if p.suffix != ".lock"] == []
