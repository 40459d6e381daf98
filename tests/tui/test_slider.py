from textual.app import App, ComposeResult

from gpt_tui.tui.widgets.slider import Slider


class SliderApp(App[None]):
    CSS = "Slider { width: 40; height: 1; }"

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, float]] = []
        self.typed: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Slider(0.0, 2.0, 1.0, step=0.05, big_step=0.25, id="temperature")
        yield Slider(0, 50257, 0, step=1, integer=True, log_scale=True, id="top_k")

    def on_slider_changed(self, event: Slider.Changed) -> None:
        self.changes.append((event.slider.id, event.value))

    def on_slider_typed(self, event: Slider.Typed) -> None:
        self.typed.append((event.slider.id, event.text))


async def test_keyboard_steps_big_steps_and_ends():
    app = SliderApp()
    async with app.run_test() as pilot:
        slider = app.query_one("#temperature", Slider)
        slider.focus()
        await pilot.press("right")
        assert slider.value == 1.05
        await pilot.press("shift+left", "shift+left")
        assert slider.value == 0.55
        await pilot.press("end")
        assert slider.value == 2.0
        await pilot.press("right")  # at the maximum: no change, no message
        await pilot.press("home")
        assert slider.value == 0.0
        assert [v for _, v in app.changes] == [1.05, 0.8, 0.55, 2.0, 0.0]


async def test_log_track_moves_by_useful_amounts():
    app = SliderApp()
    async with app.run_test() as pilot:
        slider = app.query_one("#top_k", Slider)
        slider.focus()
        await pilot.press("right")
        assert slider.value == 1
        for _ in range(20):
            await pilot.press("right")
        assert 10 < slider.value < 50257
        assert slider.value == int(slider.value)
        assert slider.position_of(slider.value_at(0.5)) == slider.position_of(slider.value_at(0.5))


async def test_click_and_drag_set_the_value():
    app = SliderApp()
    async with app.run_test() as pilot:
        slider = app.query_one("#temperature", Slider)
        track = slider._track_width()
        await pilot.click("#temperature", offset=(0, 0))
        assert slider.value == 0.0 and app.focused is slider
        await pilot.click("#temperature", offset=(track - 1, 0))
        assert slider.value == 2.0
        await pilot.mouse_down("#temperature", offset=(0, 0))
        await pilot.hover("#temperature", offset=(track // 2, 0))
        await pilot.mouse_up("#temperature", offset=(track // 2, 0))
        assert 0.9 <= slider.value <= 1.1
        # clicking the value label does not move the slider
        before = slider.value
        await pilot.click("#temperature", offset=(track + 3, 0))
        assert slider.value == before


async def test_typing_a_value_posts_it_for_validation():
    app = SliderApp()
    async with app.run_test() as pilot:
        slider = app.query_one("#temperature", Slider)
        slider.focus()
        await pilot.press("1", ".", "7", "x", "backspace")
        assert slider.editing == "1.7"
        await pilot.press("enter")
        assert app.typed == [("temperature", "1.7")]
        assert slider.editing is None and slider.value == 1.0  # the owner applies it
        await pilot.press("5", "escape")
        assert slider.editing is None and app.typed == [("temperature", "1.7")]
