"""Every policy of the selfheal-lb guard-rail pack, importable without starting the analyzer."""

from __future__ import annotations

from rules import RESOURCE_POLICIES
from stack_rules import STACK_POLICIES

PACK_NAME = "selfheal-lb-guardrails"
POLICIES = [*RESOURCE_POLICIES, *STACK_POLICIES]
