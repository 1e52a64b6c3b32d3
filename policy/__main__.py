"""Entry point the Pulumi CLI runs for `--policy-pack policy` (serves the analyzer over gRPC).

The CLI runs this directory with runpy, so the sibling modules import as top-level modules.
Every policy is mandatory: a violation fails `pulumi preview` and stops `pulumi up` before
the offending resource is created.
"""

from pack import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
