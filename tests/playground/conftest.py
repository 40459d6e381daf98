"""The playground tests' shared fixtures."""

from __future__ import annotations

import pytest
from hand_session import hand_session

from gpt_tui.playground.session import Session


@pytest.fixture
def page_session() -> Session:
    return hand_session()
