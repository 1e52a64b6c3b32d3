"""A small Helm chart the tests build themselves, standing in for the metrics-server archive.

It is NOT the upstream chart (that one cannot be fetched on every test machine): it has the
same interface the stack relies on (values `args`, `resources`, `commonLabels`,
`apiService.annotations`; a Deployment, a Service and the APIService v1beta1.metrics.k8s.io),
so the pipeline around the archive — checksum, cache, `helm template` under the mocks,
ownership marks, retain on delete, render, validation — is exercised with a real helm.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from components import helm_template

TEST_CHART_NAME = "selfheal-lb-test-chart"

CHART_YAML = f"""\
apiVersion: v2
name: {TEST_CHART_NAME}
description: Test stand-in for the metrics-server chart (built by the tests, not upstream).
version: 0.0.1
"""

VALUES_YAML = """\
args: []
resources: {}
commonLabels: {}
apiService:
  annotations: {}
"""

TEMPLATES = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ .Release.Name }}
    {{- with .Values.commonLabels }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Release.Name }}
    spec:
      containers:
        - name: metrics-server
          image: registry.example/test/metrics-server:0.0.1
          args:
            - --secure-port=10250
            {{- range .Values.args }}
            - {{ . }}
            {{- end }}
          resources: {{- toYaml .Values.resources | nindent 12 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ .Release.Name }}
    {{- with .Values.commonLabels }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  selector:
    app.kubernetes.io/name: {{ .Release.Name }}
  ports:
    - name: https
      port: 443
      targetPort: 10250
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.metrics.k8s.io
  labels:
    app.kubernetes.io/name: {{ .Release.Name }}
    {{- with .Values.commonLabels }}{{ toYaml . | nindent 4 }}{{ end }}
  {{- with .Values.apiService.annotations }}
  annotations: {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service:
    name: {{ .Release.Name }}
    namespace: {{ .Release.Namespace }}
    port: 443
"""


def chart_archive_bytes() -> bytes:
    """The chart as a .tgz, byte-for-byte the same on every call (fixed mtimes and order)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in (
            ("Chart.yaml", CHART_YAML),
            ("values.yaml", VALUES_YAML),
            ("templates/objects.yaml", TEMPLATES),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"{TEST_CHART_NAME}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def write_chart(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{TEST_CHART_NAME}-0.0.1.tgz"
    path.write_bytes(chart_archive_bytes())
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def require_helm() -> None:
    """Skip (with the one-line reason) where the pinned helm is not built."""
    try:
        helm_template.helm_binary()
    except helm_template.HelmUnavailable as missing:
        pytest.skip(str(missing))
