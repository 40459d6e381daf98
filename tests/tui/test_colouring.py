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


def test_surprisal_is_a_continuous_scale_in_bits():
    from gpt_tui.tui.colouring import MAX_BITS, MODES, surprisal_bits, surprisal_level

    assert MODES == ("off", "probability", "rank", "surprisal")
    assert surprisal_bits(0.25) == 2.0 and surprisal_bits(0.0) == float("inf")
    assert surprisal_level(0.0) == 0.0 and surprisal_level(MAX_BITS / 2) == 0.5
    assert surprisal_level(float("inf")) == 1.0
    shades = [token_style("surprisal", 2.0**-bits, 1).bgcolor for bits in range(0, 13, 2)]
    assert len(set(shades)) == len(shades)  # each step of two bits is its own shade
    # darker the more surprising: the red+green+blue sum falls
    sums = [sum(c.get_truecolor()) for c in shades]
    assert sums == sorted(sums, reverse=True)
    assert "12+" in legend("surprisal").plain and "bits" in legend("surprisal").plain
