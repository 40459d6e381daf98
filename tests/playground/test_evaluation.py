"""playground/evaluation.py: files read or refused, a (file, model) scored end to end, bits per
byte by its definition across tokenizers, and a model against a reference."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpt_tui.backends.local import LocalBackend
from gpt_tui.engine.perplexity import plan_windows
from gpt_tui.errors import InputError
from gpt_tui.models.loading import load_model
from gpt_tui.playground.evaluation import FileEval, read_text_file, same_tokenizer, text_ids

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "eval_reference.json").read_text())
TEXT = REFERENCE["text"]


def local(path: Path) -> LocalBackend:
    return LocalBackend(load_model(path))


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LocalBackend]:
    """The fixtures, and llama3 with a tokenizer that puts BOS first (as the reference's)."""
    bos_dir = tmp_path_factory.mktemp("bos") / "llama3"
    shutil.copytree(FIXTURES / "hf" / "llama3", bos_dir)
    tokenizer = json.loads((bos_dir / "tokenizer.json").read_text())
    tokenizer["post_processor"] = REFERENCE["bos_post_processor"]
    (bos_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    found = {name: local(FIXTURES / "hf" / name) for name in ("gpt2", "llama3", "qwen2")}
    return {**found, "llama3+bos": local(bos_dir)}


def reference_case(model: str, bos: bool, ctx: int, stride: int) -> dict:
    return next(
        c
        for c in REFERENCE["cases"]
        if (c["model"], c["bos"], c["ctx"], c["stride"]) == (model, bos, ctx, stride)
    )


def run(evaluation: FileEval) -> FileEval:
    for _ in evaluation.run():
        pass
    return evaluation


# --- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b" \n\t\n", "empty"),
        (b"PK\x03\x04\x00\x00binary", "binary"),
        (b"caf\xe9 au lait", r"not valid UTF-8 \(byte 0xe9 at offset 3\)"),
    ],
)
def test_files_that_cannot_be_evaluated_say_why(tmp_path: Path, content: bytes | None, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_text_file(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_a_directory_is_not_a_text_file(tmp_path: Path):
    with pytest.raises(InputError, match="is a directory"):
        read_text_file(tmp_path)


def test_a_text_file_is_read(tmp_path: Path):
    (tmp_path / "t.txt").write_text("café 🎉\n", encoding="utf-8")
    assert read_text_file(tmp_path / "t.txt") == "café 🎉\n"


# --- one file under one model -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bos", "ctx", "stride"),
    [("gpt2", False, 24, 10), ("llama3", False, 48, 20), ("llama3+bos", True, 48, 20)],
)
def test_a_file_scores_as_transformers_and_bits_per_byte_is_the_definition(
    backends, name: str, bos: bool, ctx: int, stride: int
):
    backend = backends[name]
    case = reference_case(name.removesuffix("+bos"), bos, ctx, stride)
    result = run(FileEval("t.txt", TEXT, name, backend, ctx=ctx, stride=stride)).result()
    logprobs = np.array(case["logprobs"])
    assert result.tokens == len(logprobs) and not result.partial
    assert result.nll == pytest.approx(-logprobs.mean(), abs=1e-6)
    assert result.perplexity == pytest.approx(math.exp(-logprobs.mean()), rel=1e-6)
    # Bits per byte: total nats / ln 2 / UTF-8 bytes of what was scored. With BOS first every
    # byte of the text is scored; without, all but the first token's.
    ids = case["ids"]
    unscored = b"" if bos else backend.tokenizer.decode_bytes(ids[:1])
    n_bytes = len(TEXT.encode("utf-8")) - len(unscored)
    assert result.n_bytes == n_bytes
    assert result.bits_per_byte == pytest.approx(-logprobs.sum() / math.log(2) / n_bytes, rel=1e-6)


def test_bos_first_only_where_the_tokenizer_puts_it(backends):
    plain = text_ids(backends["llama3"].tokenizer, TEXT)
    with_bos = text_ids(backends["llama3+bos"].tokenizer, TEXT)
    assert with_bos.tolist() == [backends["llama3+bos"].tokenizer.bos_id, *plain.tolist()]
    gpt2 = backends["gpt2"].tokenizer
    assert gpt2.bos_id is not None and text_ids(gpt2, TEXT)[0] != gpt2.bos_id


def test_bits_per_byte_agree_in_meaning_across_tokenizers(backends):
    """Two vocabularies split the text differently (GPT-2's 50,257 tokens, a 400-token BPE):
    per token the figures differ by the tokens' length, per byte they measure the same thing."""
    results = [
        run(FileEval("t.txt", TEXT, n, backends[n], ctx=32, stride=16)).result()
        for n in ("gpt2", "llama3+bos")
    ]
    gpt2, llama = results
    assert gpt2.tokens < llama.tokens  # a larger vocabulary: fewer, longer tokens
    for r in results:
        assert r.bits_per_byte == pytest.approx(r.nll * r.tokens / math.log(2) / r.n_bytes)
    assert llama.n_bytes == len(TEXT.encode())


def test_defaults_are_the_models_context_and_half_of_it(backends):
    e = FileEval("t.txt", TEXT, "gpt2", backends["gpt2"])
    assert (e.ctx, e.stride) == (64, 32)
    assert e.total == sum(w.n_scored for w in plan_windows(len(e.ids), 64, 32))


@pytest.mark.parametrize(
    ("ctx", "stride", "message"),
    [(65, None, "larger than gpt2's context of 64"), (16, 17, "--stride 17 is larger")],
)
def test_windows_the_model_cannot_take_are_refused(backends, ctx, stride, message):
    with pytest.raises(InputError, match=message):
        FileEval("t.txt", TEXT, "gpt2", backends["gpt2"], ctx=ctx, stride=stride)


def test_a_text_of_one_token_is_too_short(backends):
    with pytest.raises(InputError, match="t.txt: too short"):
        FileEval("t.txt", "Hello", "gpt2", backends["gpt2"])


def test_stopped_early_the_result_is_partial(backends):
    e = FileEval("t.txt", TEXT, "gpt2", backends["gpt2"], ctx=16, stride=8)
    done = sum(itertools.islice(e.run(), 3))
    result = e.result()
    assert result.partial and result.tokens == done < e.total
    assert math.isfinite(result.perplexity)


# --- against a reference ------------------------------------------------------------------------


def test_against_a_reference_equals_numpy_over_full_distributions(backends):
    model, ref = backends["qwen2"], backends["llama3"]
    assert same_tokenizer(model.tokenizer, ref.tokenizer)
    e = run(FileEval("t.txt", TEXT, "qwen2", model, ctx=40, stride=16, reference=("l3", ref)))
    result = e.result()
    kl, same, delta = [], [], []
    for w in e.windows:
        window = e.ids[w.begin : w.end]
        rows = slice(w.first - 1 - w.begin, w.end - 1 - w.begin)
        p = softmax(model.model.forward(window)[rows])  # [n, n_vocab]
        q = softmax(ref.model.forward(window)[rows])
        targets = e.ids[w.first : w.end]
        kl += (q * (np.log(q) - np.log(p))).sum(-1).tolist()
        same += (p.argmax(-1) == q.argmax(-1)).tolist()
        at = np.arange(len(targets))
        delta += (p[at, targets] - q[at, targets]).tolist()
    against = result.against
    assert result.reference == "l3" and len(kl) == result.tokens
    assert against["kl_mean"] == pytest.approx(np.mean(kl), rel=1e-5)
    assert against["same_top1"] == pytest.approx(np.mean(same))
    assert against["delta_p"]["mean"] == pytest.approx(np.mean(delta), abs=1e-7)
    for q in (1, 5, 50, 95, 99):
        assert against["delta_p"][f"p{q}"] == pytest.approx(np.percentile(delta, q), abs=1e-7)


def test_with_a_reference_the_window_is_the_smaller_context(backends):
    llama3, qwen2 = backends["llama3"], backends["qwen2"]  # contexts of 256 and 128
    e = FileEval("t.txt", TEXT, "llama3", llama3, reference=("q2", qwen2))
    assert (e.ctx, e.stride) == (128, 64)
    with pytest.raises(InputError, match="--ctx 200 is larger than q2's context of 128"):
        FileEval("t.txt", TEXT, "llama3", llama3, ctx=200, reference=("q2", qwen2))


def test_a_reference_with_another_tokenizer_is_refused(backends):
    assert not same_tokenizer(backends["gpt2"].tokenizer, backends["llama3"].tokenizer)
    with pytest.raises(InputError, match="--against l3: its tokenizer is not gpt2's"):
        FileEval("t.txt", TEXT, "gpt2", backends["gpt2"], reference=("l3", backends["llama3"]))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)
