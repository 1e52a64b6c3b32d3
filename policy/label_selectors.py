"""Kubernetes label selector matching (matchLabels + matchExpressions), as the API server does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podspec import is_list, is_mapping


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """True when a LabelSelector selects a pod with `labels`.

    An empty selector ({} ) selects every pod, as in policy/v1 PodDisruptionBudget; a
    missing selector (None) selects nothing.
    """
    if not is_mapping(selector):
        return False
    match_labels = selector.get("matchLabels") or {}
    if is_mapping(match_labels):
        for key, value in match_labels.items():
            if labels.get(key) != value:
                return False
    expressions = selector.get("matchExpressions") or []
    if not is_list(expressions):
        return False
    return all(_expression_matches(expr, labels) for expr in expressions)


def _expression_matches(expr: Any, labels: Mapping[str, Any]) -> bool:
    if not is_mapping(expr):
        return False
    key, operator = expr.get("key"), expr.get("operator")
    values = list(expr.get("values") or [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator is rejected by the API server too
