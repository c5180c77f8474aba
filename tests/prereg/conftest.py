"""Fixtures for the pre-registration tests."""

from __future__ import annotations

import pytest
from prereg_helpers import FakeClock


@pytest.fixture
def clock():
    return FakeClock()
