"""Server-sent events: the lines of a streamed answer -> the data of each event.

The format (WHATWG HTML, "server-sent events"): an event is a run of lines ended by a blank line;
`data:` lines carry its payload (several are joined with newlines), lines starting with `:` are
comments (keep-alives), and `event:`, `id:` and `retry:` are fields we have no use for. An event
still open when the stream ends is dropped, as the format says: a connection cut in the middle of
an event must not hand half a JSON object to the parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DONE = "[DONE]"  # OpenAI's end-of-stream marker, sent as the data of a last event


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each complete event, in order (a keep-alive comment yields nothing)."""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
            data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
