"""The pinned helm that renders charts under the mocks: one version, in step with the script
that builds it, and a one-line message where it is missing."""

from __future__ import annotations

import re

import pytest
from chart_fixtures import require_helm, write_chart
from stack_fixtures import ROOT

from components import helm_template


def test_install_tools_builds_the_version_the_renderer_expects():
    script = (ROOT / "scripts" / "install-tools.sh").read_text()
    (pinned,) = re.findall(r'HELM_VERSION="\$\{HELM_VERSION:-(v[0-9.]+)\}"', script)
    assert pinned == helm_template.HELM_VERSION
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pinned)


def test_missing_helm_is_one_line_saying_how_to_get_it(tmp_path):
    with pytest.raises(helm_template.HelmUnavailable) as caught:
        helm_template.helm_binary(tmp_path / "helm")
    assert str(caught.value) == (
        f"helm {helm_template.HELM_VERSION} is not built at {tmp_path / 'helm'}: "
        "run 'make tools' (needs Go)"
    )


@pytest.mark.slow  # runs helm
def test_template_renders_release_namespace_and_values(tmp_path):
    require_helm()
    archive = write_chart(tmp_path)
    objects = helm_template.template(
        {
            "path": str(archive),
            "release_name": "ms",
            "namespace": "kube-system",
            "values": {"args": ["--x"], "commonLabels": {"a": "b"}},
        }
    )
    kinds = {o["kind"]: o for o in objects}
    assert set(kinds) == {"Deployment", "Service", "APIService"}
    deployment = kinds["Deployment"]
    assert deployment["metadata"] == {
        "name": "ms",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/name": "ms", "a": "b"},
    }
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "--secure-port=10250",
        "--x",
    ]


@pytest.mark.slow  # runs helm
def test_a_broken_chart_fails_with_helms_last_line(tmp_path):
    require_helm()
    (tmp_path / "broken.tgz").write_bytes(b"not a tarball")
    with pytest.raises(RuntimeError, match=r"^helm template .*broken.tgz failed: "):
        helm_template.template({"path": str(tmp_path / "broken.tgz"), "release_name": "x"})
