"""The playground without Textual: the state and rules the app, the compare screen and the CLI
share (`core.Playground`), on any backend (gpt_tui/backends)."""
