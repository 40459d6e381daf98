"""The app's model handling: pick, confirm a download, load off the UI thread, report.

A mixin of `GptTuiApp` (kept apart so app.py stays a map of the app): loading runs in a thread
worker that reports progress (download bytes, conversion steps) as messages; a newer request or
the user cancels it through a `threading.Event`. A failure is a notification, and the model
already loaded stays in use.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from textual import work

from gpt_tui.errors import GptTuiError
from gpt_tui.models.catalog import ModelSpec
from gpt_tui.models.download import DownloadCancelled
from gpt_tui.models.store import spec_of
from gpt_tui.tui import messages as msg
from gpt_tui.tui.chat_format import has_chat_template
from gpt_tui.tui.screens.confirm import Confirm
from gpt_tui.tui.screens.model_picker import ModelPicker, model_status
from gpt_tui.tui.text import human_bytes


class ModelLoading:
    """Model switching for `GptTuiApp`."""

    def switch_model(self, name: str, *, confirmed: bool = False) -> None:
        """Load `name` (catalog name or path) off the UI thread; an uncached catalog model is
        downloaded only after the user agrees."""
        spec = catalog_spec(name)
        status = model_status(spec.name) if spec is not None else "path"
        if spec is not None and not confirmed and status not in ("bundled", "cached"):
            verb = "Resume downloading" if status == "partial" else "Download"
            question = (
                f"{verb} {spec.name}? About {human_bytes(spec.download_bytes)} from {spec.source}, "
                f"converted once and cached. It needs about {human_bytes(spec.memory_bytes)} "
                "of memory to run.\n\nThe download can be cancelled (escape) and resumed later."
            )

            def answered(yes: bool | None) -> None:
                if yes:
                    self.switch_model(name, confirmed=True)
                elif self.loaded is None:
                    self._set_state("no-model")

            self.push_screen(Confirm(f"{verb} {spec.name}", question, yes=verb), answered)
            return
        self.action_stop()
        if self._load_cancel is not None:
            self._load_cancel.set()  # a newer request replaces a load in progress
        self._load_id += 1
        self._load_cancel = threading.Event()
        self._downloading = False
        if self.loaded is None:
            self.status.model = name
            self._set_state("loading")
        self._load_worker(self._load_id, name, self._load_cancel)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, load_id: int, name: str, cancel: threading.Event) -> None:
        from gpt_tui.models.store import load_model

        def progress(p: Any) -> None:
            if cancel.is_set():  # conversion checks no Event: stop it from its progress report
                raise DownloadCancelled(f"getting {name} ready was cancelled")
            self.post_message(msg.DownloadProgress(load_id, p))

        with self._threads.running():
            try:
                loaded = load_model(name, progress=progress, cancel=cancel)
            except DownloadCancelled as exc:
                self.post_message(msg.ModelLoadFailed(load_id, name, str(exc), cancelled=True))
            except GptTuiError as exc:
                self.post_message(msg.ModelLoadFailed(load_id, name, str(exc)))
            except Exception as exc:  # noqa: BLE001 - a bug or MemoryError: say so, keep running
                error = f"{type(exc).__name__}: {exc}"
                self.post_message(msg.ModelLoadFailed(load_id, name, error))
            else:
                self.post_message(msg.ModelLoaded(load_id, name, loaded))

    def on_download_progress(self, message: msg.DownloadProgress) -> None:
        if message.load_id != self._load_id or not self.is_running:
            return
        if message.progress.phase in ("download", "convert", "wait"):
            if not self._downloading:
                self._downloading = True
                self.download_panel.start(message.progress.model)
            self.download_panel.update_progress(message.progress)

    def on_model_loaded(self, message: msg.ModelLoaded) -> None:
        if message.load_id != self._load_id or not self.is_running:
            return
        first = self.loaded is None
        self.loaded = message.loaded
        self.model_name = message.name
        self.cache = message.loaded.model.new_cache()
        self._load_cancel = None
        self._downloading = False
        self.download_panel.stop()
        self.status.model = message.loaded.name
        self.sub_title = message.loaded.name
        chat = has_chat_template(message.loaded.tokenizer) and self.settings.ui.get(
            "chat_mode", True
        )
        if chat != self.chat_mode:
            self.chat_mode = chat
        elif not self.transcript.is_empty:
            self.output.show_transcript(self.transcript, self._assistant_name())
        self._set_state("idle")
        self.status.context = None
        self._update_settings(model=self._model_setting(message.name))
        self._schedule_count()
        if not first:
            self.notify(f"Loaded {message.loaded.name}", timeout=3)
        self._announce_plan(message.loaded)

    def _announce_plan(self, loaded: Any) -> None:
        """Say when loading measured this machine's kernel plan (a few seconds, once per model
        shape), or had to ignore a kept one."""
        from gpt_tui.engine.plan import plan_of

        plan = plan_of(loaded.model)
        if plan is None:
            return
        if plan.notice:
            self.notify(plan.notice, severity="warning", timeout=10)
        elif plan.just_measured:
            self.notify(
                f"Measured how this machine runs {loaded.name} fastest ({plan.measured_s:.1f} s, "
                "once; kept for next time)",
                timeout=6,
            )

    def on_model_load_failed(self, message: msg.ModelLoadFailed) -> None:
        if message.load_id != self._load_id or not self.is_running:
            return
        self._load_cancel = None
        self._downloading = False
        self.download_panel.stop()
        keep = f"; still using {self.loaded.name}" if self.loaded is not None else ""
        if message.cancelled:
            self.notify(
                f"Cancelled getting {message.name} ready; a download resumes where it stopped "
                f"next time{keep}",
                title="Cancelled",
            )
        else:
            self.notify(
                message.error + keep, severity="error", title=f"Cannot load {message.name}",
                timeout=12,
            )  # fmt: skip
        if self.loaded is None:
            self.status.model = ""
            self._set_state("no-model")
        elif self.state == "loading":
            self._set_state("idle")

    def action_cancel_download(self) -> None:
        if self._load_cancel is None:
            self.notify("Nothing is being downloaded")
            return
        self._load_cancel.set()
        self.download_panel.query_one("#download-label").update("Cancelling…")

    def on_download_panel_cancel_pressed(self) -> None:
        self.action_cancel_download()

    def action_pick_model(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.switch_model(name)

        self.push_screen(ModelPicker(current=self.model_name), chosen)

    def _model_setting(self, name: str) -> str:
        """What to remember: a catalog name as is, a path made absolute."""
        if catalog_spec(name) is not None:
            return name
        return str(Path(name).expanduser().resolve())

    def _assistant_name(self) -> str:
        return self.loaded.name if self.loaded is not None else "Assistant"


def catalog_spec(name: str) -> ModelSpec | None:
    """The catalog entry or Hugging Face repo `name` refers to, or None for a path."""
    try:
        return spec_of(name)  # models.store decides what a name means
    except GptTuiError:
        return None
