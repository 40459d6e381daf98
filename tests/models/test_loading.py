"""Loading by name: a cached model loads fast, offline and without tensorflow; a damaged cache,
an unknown name or a path that is not a model is a message saying what to do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from http_server import FileServer
from loopback import closed_port_url

from gpt_tui import locations
from gpt_tui.errors import ModelFileError, StorageError, UnknownModelError
from gpt_tui.models import conversion, loading

DATA = "/124M/model.ckpt.data-00000-of-00001"
REPO = Path(__file__).resolve().parents[2]


def test_cached_model_loads_without_network_or_tensorflow(gpt2_url: str):
    conversion.ensure_model("124M")
    script = (
        "import sys, time\n"
        "from gpt_tui.models.loading import load_model\n"
        "loaded = load_model('124M')\n"
        "assert 'tensorflow' not in sys.modules, 'loading imported tensorflow'\n"
        "print(loaded.model.forward([15496, 995]).shape)\n"
    )
    env = {**os.environ, "GPT_TUI_GPT2_URL": closed_port_url()}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 50257)"


@pytest.mark.parametrize("damaged", ["model.safetensors", "hparams.json", "encoder.json"])
def test_truncated_cache_file_names_the_model_and_the_repair(
    gpt2_url: str, server: FileServer, damaged: str
):
    path = conversion.ensure_model("124M") / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError) as info:
        loading.load_model("124M")
    message = str(info.value)
    assert "the cached model 124M is damaged" in message
    assert "gpt-tui download 124M --force" in message

    conversion.ensure_model("124M", force=True)  # the repair the message names
    loading.load_model("124M")
    assert len(server.gets(DATA)) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 555")
def test_read_only_home_still_serves_cached_models_but_cannot_download(gpt2_url: str):
    conversion.ensure_model("124M")
    models = locations.models_dir()
    models.chmod(0o555)
    try:
        loading.load_model("124M")
        with pytest.raises(StorageError, match="GPT_TUI_HOME"):
            conversion.ensure_model("124M", force=True)
    finally:
        models.chmod(0o755)


def test_a_converted_directory_by_path_loads_as_is(tiny_model_dir: Path):
    loaded = loading.load_model(str(tiny_model_dir))
    assert loaded.path == tiny_model_dir and loaded.name == tiny_model_dir.name


def test_names_and_paths_that_are_not_models(tmp_path: Path):
    with pytest.raises(UnknownModelError, match="did you mean '124M'"):
        loading.load_model("125M")
    with pytest.raises(ModelFileError, match="does not exist"):
        loading.load_model(str(tmp_path / "nope"))
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelFileError, match="is not a model"):
        loading.load_model(str(tmp_path / "notes"))


def test_the_converted_copy_outlives_a_cleared_hugging_face_cache(hf_hub_cache: Path):
    first = loading.load_model("openai-community/gpt2")
    shutil.rmtree(hf_hub_cache / "models--openai-community--gpt2")
    again = loading.load_model("openai-community/gpt2")  # no server: it must not ask the Hub
    assert again.path == first.path and again.name == "openai-community/gpt2"
