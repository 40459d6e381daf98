"""download.py against a real HTTP server on 127.0.0.1 that misbehaves on request."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from http_server import FileServer
from loopback import closed_port_url
from openai_checkpoint import Checkpoint

from gpt_tui.errors import DownloadError, StorageError
from gpt_tui.models.download import (
    DownloadCancelled,
    DownloadProgress,
    download_file,
    download_files,
    file_lock,
)

DATA = "/124M/model.ckpt.data-00000-of-00001"


@pytest.fixture
def data(gpt2_checkpoint: Checkpoint) -> bytes:
    return gpt2_checkpoint.files["model.ckpt.data-00000-of-00001"]


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_download_streams_verifies_and_renames(server: FileServer, tmp_path: Path, data: bytes):
    events: list[DownloadProgress] = []
    dest = tmp_path / "model.ckpt.data-00000-of-00001"
    assert download_file(server.url + DATA, dest, progress=events.append, model="124M") == dest
    assert dest.read_bytes() == data
    assert not part_of(dest).exists()
    assert [r.range for r in server.gets(DATA)] == [None]
    assert events[-1].done == events[-1].total == len(data)
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert {(e.model, e.file, e.phase) for e in events} == {("124M", dest.name, "download")}


def test_dropped_connection_leaves_a_part_file_that_the_next_run_resumes(
    server: FileServer, tmp_path: Path, data: bytes
):
    server.drop_after[DATA] = 1_000_000
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download_file(server.url + DATA, dest, retries=0)
    assert not dest.exists()
    kept = part_of(dest).stat().st_size
    assert 0 < kept <= 1_000_000
    assert part_of(dest).read_bytes() == data[:kept]

    download_file(server.url + DATA, dest, retries=0)
    assert dest.read_bytes() == data  # and its MD5 was checked: x-ms-blob-content-md5
    assert [r.range for r in server.gets(DATA)] == [None, f"bytes={kept}-"]
    assert not part_of(dest).exists()


def test_dropped_connection_is_resumed_within_the_same_run(
    server: FileServer, tmp_path: Path, data: bytes
):
    server.drop_after[DATA] = 500_000
    dest = download_file(server.url + DATA, tmp_path / "data", retries=2, backoff=0)
    assert dest.read_bytes() == data
    ranges = [r.range for r in server.gets(DATA)]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")


def test_wrong_md5_deletes_the_download_and_says_so(server: FileServer, tmp_path: Path):
    server.wrong_md5.add(DATA)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="corrupt: its MD5") as info:
        download_file(server.url + DATA, dest)
    assert "deleted" in str(info.value)
    assert not dest.exists() and not part_of(dest).exists()


def test_404_fails_at_once_with_the_url(server: FileServer, tmp_path: Path):
    url = server.url + "/125M/hparams.json"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(url, tmp_path / "hparams.json")
    assert url in str(info.value) and "GPT_TUI_GPT2_URL" in str(info.value)
    assert len(server.gets("/125M/hparams.json")) == 1  # not retried
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_means_starting_over(server: FileServer, tmp_path: Path, data: bytes):
    dest = tmp_path / "data"
    part_of(dest).write_bytes(b"stale bytes that are not the file" * 100)
    server.ignore_range = True
    download_file(server.url + DATA, dest)
    assert dest.read_bytes() == data
    assert [r.range for r in server.gets(DATA)] == ["bytes=3300-"]  # asked, got a 200


def test_server_errors_are_retried_with_back_off(server: FileServer, tmp_path: Path, data: bytes):
    server.fail[DATA] = [503, 500]
    dest = download_file(server.url + DATA, tmp_path / "data", retries=2, backoff=0.01)
    assert dest.read_bytes() == data
    assert len(server.gets(DATA)) == 3


def test_persistent_server_errors_give_up_after_the_retries(server: FileServer, tmp_path: Path):
    server.fail[DATA] = [503] * 5
    with pytest.raises(DownloadError, match=r"failed 2 times \(HTTP 503"):
        download_file(server.url + DATA, tmp_path / "data", retries=1, backoff=0.01)
    assert len(server.gets(DATA)) == 2


def test_closed_port_fails_fast_and_points_to_the_offline_model(tmp_path: Path):
    closed = closed_port_url()
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(f"{closed}/124M/hparams.json", tmp_path / "hparams.json")
    assert time.monotonic() - start < 2  # no retries for a host that is not there
    message = str(info.value)
    assert "connection refused" in message and "offline?" in message and "smollm2" in message


def test_cancel_stops_the_download_and_keeps_the_part_for_a_resume(
    server: FileServer, tmp_path: Path, data: bytes
):
    server.bytes_per_second = 4_000_000
    cancel = threading.Event()
    dest = tmp_path / "data"

    def stop_midway(event: DownloadProgress) -> None:
        if event.done > 200_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_file(server.url + DATA, dest, progress=stop_midway, cancel=cancel)
    kept = part_of(dest).stat().st_size
    assert 0 < kept < len(data) and not dest.exists()

    server.bytes_per_second = None
    download_file(server.url + DATA, dest)
    assert dest.read_bytes() == data
    assert server.gets(DATA)[-1].range == f"bytes={kept}-"


def test_download_files_keeps_files_already_there(server: FileServer, tmp_path: Path):
    (tmp_path / "hparams.json").write_text("{}")  # a final name only ever holds a verified file
    events: list[DownloadProgress] = []
    download_files(server.url + "/124M", ["hparams.json", "vocab.bpe"], tmp_path,
                   model="124M", progress=events.append)  # fmt: skip
    assert server.gets("/124M/hparams.json") == [] and len(server.gets("/124M/vocab.bpe")) == 1
    assert {(e.file, e.file_index, e.file_count) for e in events} == {
        ("hparams.json", 1, 2),
        ("vocab.bpe", 2, 2),
    }


def test_file_lock_says_busy_or_waits_until_cancelled(tmp_path: Path):
    lock_path = tmp_path / "124M.lock"
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with file_lock(lock_path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        held.wait(5)
        with (
            pytest.raises(DownloadError, match="another gpt-tui process"),
            file_lock(lock_path, wait=False),
        ):
            pass
        cancel, waited = threading.Event(), []
        threading.Timer(0.3, cancel.set).start()
        with (
            pytest.raises(DownloadCancelled),
            file_lock(lock_path, cancel=cancel, on_wait=lambda: waited.append(True), poll=0.05),
        ):
            pass
        assert waited == [True]
    finally:
        release.set()
        thread.join()
    with file_lock(lock_path, wait=False):  # free again
        pass


def test_progress_eta() -> None:
    event = DownloadProgress("124M", "f", 1, 7, done=250, total=1000, rate=50.0)
    assert event.fraction == 0.25 and event.eta == 15.0
    assert DownloadProgress("124M", "f", 1, 7, 0, None, 0.0).eta is None


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_disk_full_names_the_directory_and_gpt_tui_home(server: FileServer, tmp_path: Path):
    dest = tmp_path / "data"
    part_of(dest).symlink_to("/dev/full")  # every write fails with ENOSPC, even for root
    with pytest.raises(StorageError) as info:
        download_file(server.url + DATA, dest)
    message = str(info.value)
    assert "disk full" in message and str(tmp_path) in message and "GPT_TUI_HOME" in message
    assert not dest.exists()
