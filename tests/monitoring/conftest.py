"""tests/monitoring: the project root, tests/loadgen (its real-process helpers) and app/ (the
app's histogram buckets) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests" / "loadgen", ROOT / "app"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
