"""Shared test setup: quiet Warp, repository paths, small shared fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import warp as wp

wp.config.quiet = True
wp.config.log_level = wp.LOG_WARNING

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SCENES = sorted((ASSETS / "scenes").glob("*.toml"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
