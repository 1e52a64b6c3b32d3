"""Every step that reads another resource's live state declares that dependency.

The engine starts whatever has its declared dependencies done, at once: a read that is not
declared runs too early there (the first `up` with Redis read the store before it was up, and
the report said `unverifiable`), while a one-at-a-time order hides it. The graph is the one
the program registers (the SDK's recorded dependencies, components expanded to their
resources); `depends_on` of a component is not inherited by its children, so only what each
resource itself declares counts."""

from __future__ import annotations

import pytest
from chart_fixtures import require_helm, write_chart
from stack_fixtures import dev_config

from components import offline
from components.metrics_api import ABSENT

pytestmark = pytest.mark.slow  # renders the metrics-server chart with helm

# reader -> the components (all their resources) and resources whose live state it reads.
READS = {
    # The baseline: the app's pods behind their Service and policies, the metrics API they are
    # sampled from, and the store whose counter is the consistency check's baseline.
    "verification-snapshot": {"components": ("app", "state-store", "metrics-server")},
    # fortio loads the Service by name, through its egress rule, after the baseline.
    "loadgen-job": {"resources": ("app-service", "loadgen-egress", "verification-snapshot")},
    # verify reads the Job's pods and the baseline document.
    "verification-verify": {"resources": ("loadgen-job", "verification-snapshot")},
    # The pods need their image on the node, their Secret and their namespace's rules.
    "app-deployment": {
        "resources": ("image-load", "state-store-secret", "namespace", "default-deny")
    },
    "image-load": {"resources": ("image",)},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> offline.ProgramRun:
    """Every optional part on: Redis, a metrics-server the stack installs (a test chart)."""
    require_helm()
    chart = write_chart(tmp_path_factory.mktemp("chart"))
    local = offline.stack_config("local")
    config = {
        **dev_config(stateStore="redis", stateStoreImage="selfheal-lb/redis:test"),
        "selfheal-lb:imageLoadCommand": local["selfheal-lb:imageLoadCommand"],
        "selfheal-lb:metricsServerEnabled": True,
    }
    return offline.run_program(config, metrics_api=ABSENT, chart=chart)


def closure(run: offline.ProgramRun, urn: str) -> set[str]:
    """Every resource `urn` waits for, directly or through what it waits for."""
    by_urn = {r.urn: r for r in run.resources}
    seen: set[str] = set()
    todo = list(by_urn[urn].dependencies)
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(by_urn[dep].dependencies if dep in by_urn else ())
    return seen


def custom(run: offline.ProgramRun, name: str) -> offline.RecordedResource:
    """The resource (not a component: the image's component is named `image` too)."""
    (found,) = [r for r in run.resources if r.name == name and r.custom]
    return found


def descendants(run: offline.ProgramRun, name: str) -> list[offline.RecordedResource]:
    """The resources under the component `name` (any depth), providers aside."""
    # The stack's own component of that name (a chart inside it may bear the same name).
    top = [r for r in run.resources if r.name == name and not r.custom and r.parent_type in (
        "pulumi:pulumi:Stack", "")]  # fmt: skip
    assert len(top) == 1, f"expected one component {name}"
    parents, out = {top[0].urn}, []
    for rec in run.resources:  # parents register before their children
        if rec.parent_urn in parents:
            parents.add(rec.urn)
            if rec.custom and not rec.type.startswith("pulumi:providers:"):
                out.append(rec)
    return out


@pytest.mark.parametrize("reader", sorted(READS))
def test_each_reader_waits_for_what_it_reads(run: offline.ProgramRun, reader: str):
    waits_for = closure(run, custom(run, reader).urn)
    wanted = [custom(run, n) for n in READS[reader].get("resources", ())]
    for component in READS[reader].get("components", ()):
        children = descendants(run, component)
        assert children, f"{component} has no resources in this run"
        wanted += children
    missing = sorted({r.name for r in wanted if r.urn not in waits_for})
    assert not missing, f"{reader} reads the live state of {missing} without waiting for it"


def test_the_table_names_what_the_program_has(run: offline.ProgramRun):
    """A renamed resource cannot leave a reader unchecked."""
    names = {r.name for r in run.resources}
    for reader, reads in READS.items():
        assert reader in names
        assert set(reads.get("resources", ())) | set(reads.get("components", ())) <= names
