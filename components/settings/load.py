"""The load (fortio) and its verification, and the refusal of a load too small to verify."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from components.settings.app import AppSettings
from components.settings.schema import Reader, check_image_ref
from loadgen.verdict import smallest_verifiable_units

LoadMode = Literal["job", "continuous", "off"]
_URL_PATH = re.compile(r"^/[^\s#]*$")
_VERIFY_MIN_TIMEOUT, _VERIFY_MAX_TIMEOUT = 10, 3600


@dataclass(frozen=True)
class LoadSettings:
    mode: LoadMode
    pods: int
    connections: int  # per pod (fortio -c)
    requests: int  # per pod (fortio -n)
    qps: int  # per pod, 0 = as fast as possible (fortio -qps 0)
    path: str  # e.g. "/article1"
    keepalive: bool
    timeout_seconds: int  # per-request timeout
    image: str  # fortio's image (pinned); a mirror's or locally built copy for air-gapped clusters


@dataclass(frozen=True)
class VerifySettings:
    enabled: bool  # needs LoadSettings.mode == "job"
    significance: float  # alpha of the distribution test, 0 < a < 0.5
    timeout_seconds: int  # whole verification
    fail_on_imbalance: bool  # make `pulumi up` fail on an imbalanced verdict


def parse_load(r: Reader) -> LoadSettings:
    mode = r.string("loadgenMode", choices=("job", "continuous", "off"))
    pods = r.integer("loadgenPods", 1, 50)
    connections = r.integer("loadgenConnections", 1, 10_000)
    requests = r.integer(
        "loadgenRequests", connections, 10_000_000, " (at least loadgenConnections)"
    )
    qps = r.integer("loadgenQps", 0, 100_000, " (0 = as fast as possible)")
    if mode == "continuous" and qps == 0:
        r.fail(
            "loadgenQps", qps, "must be at least 1 when loadgenMode is continuous (endless load)"
        )
    image = r.string("loadgenImage").strip()
    check_image_ref(r, image, "loadgenImage")
    path = r.string("loadgenPath")
    if not _URL_PATH.match(path):
        r.fail("loadgenPath", path, "must start with '/' and contain no spaces, e.g. /article1")
    return LoadSettings(
        mode=mode,  # type: ignore[arg-type]
        pods=pods,
        connections=connections,
        requests=requests,
        qps=qps,
        path=path,
        keepalive=r.boolean("loadgenKeepalive"),
        timeout_seconds=r.integer("loadgenTimeoutSeconds", 1, 120),
        image=image,
    )


def parse_verify(r: Reader, mode: str) -> VerifySettings:
    enabled = r.boolean("verifyEnabled")
    if enabled and mode != "job":
        r.fail(
            "verifyEnabled", True, f"needs loadgenMode job (it is {mode}); set verifyEnabled false"
        )
    text = r.string("verifySignificance").strip()
    try:
        alpha = float(text)
    except ValueError:
        alpha = -1.0
    if not 0 < alpha < 0.5:
        r.fail("verifySignificance", text, "must be a number between 0 and 0.5, e.g. 0.01")
    return VerifySettings(
        enabled=enabled,
        significance=alpha,
        timeout_seconds=r.integer("verifyTimeoutSeconds", _VERIFY_MIN_TIMEOUT, _VERIFY_MAX_TIMEOUT),
        fail_on_imbalance=r.boolean("verifyFailOnImbalance"),
    )


def check_load_verifies(
    r: Reader, app: AppSettings, load: LoadSettings, verify: VerifySettings
) -> None:
    """Refuse a load too small to tell a pod that got nothing from bad luck.

    With few balanced units over many pods some pod is left empty by chance (300 connections
    over 50 pods: 11% of the time), so the verdict could not call a dead pod a failure. With
    sticky sessions the unit is the client, and the report says what so few clients can show."""
    if not verify.enabled or load.mode != "job" or app.replicas < 2:
        return
    if app.session_affinity == "ClientIP":
        return
    need = smallest_verifiable_units(app.replicas, verify.significance)
    key, per_pod, word = (
        ("loadgenConnections", load.connections, "keep-alive connections")
        if load.keepalive
        else ("loadgenRequests", load.requests, "requests (one connection each)")
    )
    units = load.pods * per_pod
    if units >= need:
        return
    suggestion = f"{key} {math.ceil(need / load.pods)}"
    if load.keepalive and math.ceil(need / load.pods) > load.requests:
        suggestion += " and loadgenRequests at least that"
    r.fail(
        key,
        per_pod,
        f"too small to verify appReplicas={app.replicas} at verifySignificance "
        f"{verify.significance:g}: {load.pods} pods x {per_pod} = {units} {word} leave some "
        f"pod empty by chance too often; the smallest load that would do is {need} in all, "
        f"e.g. {suggestion} (or more loadgenPods)",
    )
