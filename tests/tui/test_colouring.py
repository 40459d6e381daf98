from gpt_tui.tui.colouring import legend, probability_level, token_style


def test_rank_buckets_follow_gltr():
    styles = [token_style("rank", 0.5, r).bgcolor for r in (1, 2, 10, 11, 100, 101, 50000)]
    assert len(set(styles)) == 4
    assert styles[1] == styles[2] and styles[3] == styles[4] and styles[5] == styles[6]


def test_probability_scale_is_logarithmic_and_clamped():
    assert probability_level(1.0) == 1.0
    assert abs(probability_level(0.1) - 2 / 3) < 1e-9
    assert probability_level(1e-6) == 0.0
    assert probability_level(0.0) == 0.0


def test_styles_and_legends():
    assert token_style("off", 0.5, 1) is None
    likely, unlikely = token_style("probability", 0.9, 1), token_style("probability", 1e-4, 900)
    assert likely.bgcolor != unlikely.bgcolor
    assert token_style("rank", 0.9, 1).bgcolor != token_style("rank", 0.1, 5).bgcolor
    assert "top-10" in legend("rank").plain
    assert "100%" in legend("probability").plain
    assert legend("off").plain == ""
