"""Shared fixtures for the loadgen tests: the project root on sys.path, free ports, and
process helpers that always clean up."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
