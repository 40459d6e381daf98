"""`gpt-tui serve`: the app in a browser, through textual-serve.

textual-serve starts the app anew (`python -m gpt_tui ...`) for each browser tab and relays its
screen over a websocket. It has no authentication: whoever reaches the port drives the app and
the machine's models, so it listens on the loopback interface unless another host is asked for,
and then says so.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import shlex
import socket
import sys

from gpt_tui.cli.console import stderr
from gpt_tui.cli.flags import add_api_key_flag
from gpt_tui.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _port_type(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, not {text!r}")
    return port


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the app to a web browser (loopback only unless --host says otherwise)",
        description="Serve the playground to a web browser with textual-serve: each browser tab "
        "runs its own app. There is no authentication, so it listens on 127.0.0.1 unless "
        "--host names another address.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="the address to listen on (%(default)s)")
    p.add_argument("--port", type=_port_type, default=DEFAULT_PORT, help="the port (%(default)s)")
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the address browsers reach the server by, where it is not http://HOST:PORT "
        "(behind a proxy; for --host 0.0.0.0 the default names this machine's host name)",
    )
    p.add_argument("--model", "-m", help="model name or path each app opens with")
    p.add_argument(
        "--open", metavar="FILE", dest="session_file", help="a saved session each app reopens"
    )
    add_api_key_flag(p)
    p.set_defaults(run=_run_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url(host: str, port: int, asked: str | None) -> str:
    """The URL the page tells the browser to connect back to (textual-serve writes it into the
    page): a wildcard host is no address a browser can reach, this machine's name is."""
    if asked:
        return asked.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:  # an IPv6 address, in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{port}"


def app_command(args: argparse.Namespace) -> str:
    """The shell command textual-serve runs for each tab: this Python, this gpt-tui."""
    argv = [sys.executable, "-m", "gpt_tui"]
    if args.model:
        argv += ["--model", args.model]
    if args.session_file:
        argv += ["--open", os.path.abspath(os.path.expanduser(args.session_file))]
    return shlex.join(argv)


def check_address(host: str, port: int) -> None:
    """Bind and release the address, so that a host that is not this machine's or a port in use
    is one line before the server starts, not a traceback from inside it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot serve on {host!r}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As aiohttp does: a port whose last connections are in TIME_WAIT can be reused.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(
                    f"port {port} on {host} is in use: pick another with --port"
                ) from exc
            raise InputError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc


def _run_serve(args: argparse.Namespace) -> int:
    from textual_serve.server import Server  # aiohttp and jinja2: only when serving

    check_address(args.host, args.port)
    if not is_loopback(args.host):
        stderr.print(
            f"warning: serving on {args.host}:{args.port} without authentication: anyone who "
            "can reach it can use this playground and this machine's models",
            markup=False,
        )
    if args.api_key:  # to the apps through their environment, never on a command line
        os.environ["OPENAI_API_KEY"] = args.api_key
    url = public_url(args.host, args.port, args.public_url)
    Server(
        app_command(args), host=args.host, port=args.port, title="gpt-tui", public_url=url
    ).serve()
    return 0
