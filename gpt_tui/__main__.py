from gpt_tui.cli import main

raise SystemExit(main())
