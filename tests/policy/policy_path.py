"""Importing this puts policy/ on sys.path, as the Pulumi CLI does when it runs the pack
(runpy of the directory), so the pack's modules import by their top-level names.

A plain module rather than a conftest.py: other test modules import `conftest` by name, and a
second conftest here would shadow theirs.
"""

from __future__ import annotations

import sys
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))
