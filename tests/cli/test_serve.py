"""`gpt-tui serve`'s refusals, each one line and exit 2, and its warning off the loopback."""

from __future__ import annotations

import socket
import sys
import urllib.request

import pytest
from serving import serving

from gpt_tui.cli import main
from gpt_tui.cli.serve import app_command, is_loopback, public_url


def test_a_port_in_use_is_one_line(capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: port {port} on 127.0.0.1 is in use: pick another with --port"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "a port is a number from 1 to 65535, not '0'"),
        (["--port", "http"], "a port is a number from 1 to 65535, not 'http'"),
    ],
)
def test_a_bad_port_is_one_line(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("no-such-host.invalid", "error: cannot serve on 'no-such-host.invalid': "),
        # TEST-NET-1: an address no machine here has; binding to it fails, nothing is reached
        ("192.0.2.1", "error: cannot serve on 192.0.2.1:8000: Cannot assign requested address"),
    ],
)
def test_a_host_not_of_this_machine_is_one_line(host, message, capsys) -> None:
    assert main(["serve", "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_loopback_names() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.org"]))


def test_the_page_names_an_address_a_browser_can_reach() -> None:
    assert public_url("127.0.0.1", 8000, None) == "http://127.0.0.1:8000"
    assert public_url("::1", 8001, None) == "http://[::1]:8001"
    assert public_url("0.0.0.0", 80, None) == f"http://{socket.gethostname()}:80"
    assert public_url("0.0.0.0", 80, "https://gpt.example/") == "https://gpt.example"


def test_each_tab_runs_this_gpt_tui_with_the_model_asked_for(tmp_path) -> None:
    from argparse import Namespace

    command = app_command(Namespace(model="my model", session_file=str(tmp_path / "s.json")))
    assert command.startswith(f"{sys.executable} -m gpt_tui --model 'my model' --open ")


def test_any_other_host_is_served_with_a_warning() -> None:
    """All interfaces, when asked: the warning is printed, and the page names this machine for
    the browser to connect back to (fetched on 127.0.0.1: no test reaches another address)."""
    with serving("--host", "0.0.0.0") as (server, url):
        warning = server.stderr.readline()
        port = url.rsplit(":", 1)[1].strip("/")
        assert warning.startswith(f"warning: serving on 0.0.0.0:{port} without authentication")
        assert warning.rstrip().endswith("this machine's models")  # one line
        with urllib.request.urlopen(url, timeout=10) as response:
            assert f'"ws://{socket.gethostname()}:{port}/ws"' in response.read().decode()
