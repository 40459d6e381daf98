"""`gpt-tui models`, `download` and `rm`, run in-process against the 127.0.0.1 test server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from http_server import FileServer

from gpt_tui import locations
from gpt_tui.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_download_models_rm(server: FileServer, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for word in ("124M", "355M", "774M", "1558M", "gpt2-xl", "smollm2", "bundled"):
        assert word in out
    assert out.count("not downloaded") == 4

    code, out, err = run(capsys, "download", "gpt2", "--base-url", server.url)
    assert code == 0, err
    assert "124M is ready" in out and str(locations.models_dir() / "124M") in out
    # The progress bars go to stderr.
    assert "model.ckpt.data-00000-of-00001 (7/7)" in err and "converting 124M" in err

    code, out, _ = run(capsys, "models")
    assert "cached" in out and out.count("not downloaded") == 3

    code, out, _ = run(capsys, "download", "124M", "--base-url", server.url)
    assert code == 0 and "already downloaded" in out
    assert len(server.gets("/124M/model.ckpt.data-00000-of-00001")) == 1

    code, out, _ = run(capsys, "download", "124M", "--force", "--keep-checkpoint",
                       "--base-url", server.url)  # fmt: skip
    assert code == 0 and (locations.models_dir() / "124M.checkpoint").is_dir()
    assert len(server.gets("/124M/model.ckpt.data-00000-of-00001")) == 2

    code, out, _ = run(capsys, "rm", "124M")
    assert code == 0 and out.startswith("removed 124M (")
    code, out, _ = run(capsys, "rm", "124M")
    assert code == 0 and "nothing to remove" in out


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str]):
    code, _, err = run(capsys, "download", "125M")
    assert code == 2 and err.count("\n") == 1 and "did you mean '124M'" in err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = run(capsys, "download", "124M", "--base-url", closed)
    assert code == 1
    assert err.startswith("error: cannot reach 127.0.0.1") and "smollm2" in err

    code, _, err = run(capsys, "rm", "smollm2")
    assert code == 2 and "bundled" in err


def test_downloading_the_bundled_model_is_a_no_op(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "download", "smollm2")
    assert code == 0 and "bundled" in out


def test_models_lists_the_hugging_face_cache(hf_hub_cache, capsys: pytest.CaptureFixture[str]):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "openai-community/gpt2" in out and "GPT2LMHeadModel" in out
    assert "HuggingFaceTB/SmolLM2-Tiny" in out and "LlamaForCausalLM" in out
    assert str(hf_hub_cache) in out.replace("\n", "")


def test_generate_with_a_hugging_face_repo_id(hf_hub_cache, capsys: pytest.CaptureFixture[str]):
    code, out, err = run(
        capsys, "generate", "-m", "openai-community/gpt2", "--max-tokens", "5",
        "--temperature", "0", "Hello",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip()
    code, out, err = run(capsys, "models")
    assert "converted" in out
    # Remembered as the default, and found again without a network.
    from gpt_tui.settings import default_model_name

    assert default_model_name() == "openai-community/gpt2"


# --- a home that cannot be written: listing works, a write says which case it is --------------
# Real file systems, not simulated errors: chmod does not stop root, so each case runs
# `gpt-tui` in a user and mount namespace of its own (no privilege needed where the kernel
# allows them; skipped where it does not).

REPO = Path(__file__).resolve().parents[2]
MOUNTS = {
    # a read-only bind of the home onto itself
    "read-only": "mount --bind {home} {home} && mount -o remount,bind,ro {home}",
    # a file system with no inode left: creating anything fails with ENOSPC
    "full": "mount -t tmpfs -o size=64k,nr_inodes=1 tmpfs {home}",
    # a home owned by nobody, not writable by its owner either: the namespace's root has no
    # power over a file whose owner it does not map (set up by the test, see below)
    "no permission": "true",
}


def gpt_tui_confined(case: str, home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    script = MOUNTS[case].format(home=home) + ' || exit 99\nexec "$@"'
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
               sys.executable, "-m", "gpt_tui", *argv]  # fmt: skip
    env = {**os.environ, "GPT_TUI_HOME": str(home), "GPT_TUI_PLAN": "default",
           "HF_HUB_CACHE": str(home.parent / "hf-hub")}  # fmt: skip
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here")
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if run.returncode == 99 or "unshare failed" in run.stderr:
        pytest.skip(f"this kernel does not allow namespaces here: {run.stderr.strip()}")
    return run


@pytest.mark.parametrize(
    ("case", "says", "fix"),
    [
        ("read-only", "it is on a read-only file system", "set GPT_TUI_HOME"),
        ("full", "disk full (no space left on its disk)", "free some space"),
        ("no permission", "permission denied", "make it writable for this user"),
    ],
)
def test_a_home_that_cannot_be_written_lists_models_and_says_why_a_write_fails(
    tmp_path: Path, tiny_model_dir: Path, case: str, says: str, fix: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if case == "no permission":
        if os.geteuid() == 0:
            os.chown(home, 65534, 65534)  # nobody: not mapped into the namespace
        home.chmod(0o555)
    listing = gpt_tui_confined(case, home, "models")
    assert listing.returncode == 0, listing.stderr
    assert "smollm2" in listing.stdout and "bundled" in listing.stdout
    assert "not downloaded" in listing.stdout

    download = gpt_tui_confined(case, home, "download", "124M")
    assert download.returncode == 1  # not the command line's fault
    error = download.stderr.strip()
    assert error.startswith("error: cannot write to ") and len(error.splitlines()) == 1
    assert str(home) in error and says in error and fix in error, error
    if case != "full":
        assert "free some space" not in error

    # a model outside the home runs; only remembering it as the default is lost, and said why
    run = gpt_tui_confined(case, home, "generate", "Hi", "-m", str(tiny_model_dir),
                           "--max-tokens", "1")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"warning: cannot write to {home / 'config'}: {says}" in run.stderr
