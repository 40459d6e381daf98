"""What the commands share to print (gpt_tui/cli/console.py): tokens that hold part of a
character."""

from __future__ import annotations

from gpt_tui.cli.console import show_alternative, show_piece, token_pieces


def test_a_character_split_over_tokens_is_whole_on_the_token_completing_it(gpt2_tokenizer):
    ids = gpt2_tokenizer.encode("a😀b")  # a, F0 9F 98, 80, b
    assert token_pieces(gpt2_tokenizer, ids) == ["a", "", "😀", "b"]
    assert show_piece("", ids[1], gpt2_tokenizer) == "[dim]bytes F0 9F 98[/]"
    assert token_pieces(gpt2_tokenizer, ids[:2]) == ["a", "\ufffd"]  # never completed


def test_an_alternative_that_is_part_of_a_character_shows_its_bytes(gpt2_tokenizer):
    part = gpt2_tokenizer.encode("a😀b")[2]  # the emoji's last byte, 80
    assert show_alternative(part, gpt2_tokenizer.token_text(part), gpt2_tokenizer) == (
        "[dim]bytes 80[/]"
    )
    whole = gpt2_tokenizer.encode(" café")[0]
    assert show_alternative(whole, gpt2_tokenizer.token_text(whole), gpt2_tokenizer) == "␣café"
