import itertools

from gpt_tui.engine import SamplingParams, TokenEvent, generate
from gpt_tui.playground.streaming import stream_events


def make_events(n: int, finish: str | None = "length"):
    for i in range(n):
        last = i == n - 1
        yield TokenEvent(i, i, "x", 0.5, -0.7, 0.5, 1, 1.0, (), i, 0, finish if last else None)


def test_batches_are_posted_at_most_thirty_times_a_second():
    clock = itertools.count(0, 0.001).__next__  # a token every millisecond: 1000 tokens/s
    posts = []
    finish, stats = stream_events(make_events(1000), lambda b, s: posts.append(b), lambda: False,
                                  clock=clock)  # fmt: skip
    assert finish == "length"
    assert sum(len(b) for b in posts) == 1000
    assert len(posts[0]) == 1  # the first token goes out at once
    assert len(posts) <= 1 + 12 * 1.0 + 1
    assert stats.n_tokens == 1000
    assert abs(stats.decode_rate - 1000) < 1


def test_cancelling_stops_within_one_token_and_closes_the_generator():
    produced = []
    closed = []

    def events():
        try:
            for e in make_events(100, None):
                produced.append(e)
                yield e
        finally:
            closed.append(True)

    posts = []
    finish, stats = stream_events(
        events(), lambda b, s: posts.append(b), lambda: len(produced) >= 5
    )
    assert finish == "user"
    assert len(produced) == 5 and stats.n_tokens == 5
    assert closed == [True]
    assert sum(len(b) for b in posts) == 5


def test_with_the_engine(tiny_gpt2, gpt2_tokenizer):
    params = SamplingParams(temperature=0.0, max_tokens=7)
    events = generate(tiny_gpt2, gpt2_tokenizer, "Hello", params)
    posted = []
    finish, stats = stream_events(events, lambda b, s: posted.extend(b), lambda: False)
    assert finish == "length" and len(posted) == 7 and stats.ttft is not None
