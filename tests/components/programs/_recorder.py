"""Records the resource options of every registration (the mocks only see inputs).

Imported by the test programs; the options come back as the stack output `options`, keyed by
logical name: ignore_changes, depends_on (logical names), custom timeouts, replacement flags.
"""

from __future__ import annotations

from typing import Any

import pulumi


def install() -> dict[str, dict[str, Any]]:
    recorded: dict[str, dict[str, Any]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        timeouts = opts.custom_timeouts
        recorded[args.name] = {
            "type": args.type_,
            "ignore_changes": list(opts.ignore_changes or []),
            "depends_on": sorted(
                r._name for r in (opts.depends_on or []) if isinstance(r, pulumi.Resource)
            ),
            "delete_before_replace": bool(opts.delete_before_replace),
            "replace_on_changes": list(opts.replace_on_changes or []),
            "custom_timeouts": {
                "create": timeouts.create if timeouts else None,
                "update": timeouts.update if timeouts else None,
            },
        }
        return None

    pulumi.runtime.register_stack_transformation(record)
    return recorded
