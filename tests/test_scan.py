"""`make scan` (scripts/scan.sh): checkov fails on an insecure manifest, and every check it
skips carries its reason next to the suppression in .checkov.yaml."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"
SCAN = ROOT / "scripts" / "scan.sh"

INSECURE_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: insecure
  namespace: selfheal-lb-dev
spec:
  hostNetwork: true
  containers:
    - name: app
      image: nginx:1.27.3
      securityContext:
        privileged: true
"""


def test_every_skipped_check_has_a_one_line_reason_next_to_it():
    text = (ROOT / ".checkov.yaml").read_text()
    skipped = yaml.safe_load(text)["skip-check"]
    assert skipped, "no skips: then drop this test's premise, not the reasons"
    for check in skipped:
        (line,) = [line for line in text.splitlines() if re.match(rf"\s*-\s*{check}\b", line)]
        reason = line.split("#", 1)[1].strip() if "#" in line else ""
        assert len(reason) >= 40, f"{check}: give the reason on its line ('# why')"


def test_the_scan_never_calls_out():
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert config["skip-download"] is True
    assert "BC_SKIP_MAPPING=TRUE" in SCAN.read_text()


@pytest.mark.slow  # runs checkov
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov not installed yet: run `make scan`")
def test_the_scan_fails_on_an_insecure_manifest_and_names_the_checks(tmp_path):
    (tmp_path / "pod-insecure.yaml").write_text(INSECURE_POD)
    (tmp_path / "all.yaml").write_text("this: [is not scanned")  # skipped like the real one
    result = subprocess.run(
        [str(SCAN), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for check in ("CKV_K8S_16", "CKV_K8S_19", "CKV_K8S_8"):  # privileged, hostNetwork, liveness
        assert check in result.stdout
    assert "CKV_K8S_15" not in result.stdout  # skipped in .checkov.yaml, with its reason


def test_the_scan_refuses_an_empty_directory(tmp_path):
    result = subprocess.run([str(SCAN), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "run 'make render' first" in result.stderr
