"""Stack outputs derived from the settings and the Service's status (plain functions, tested)."""

from __future__ import annotations

from typing import Any

from components.settings import AppSettings, ClusterSettings, Settings


def url(address: str, app: AppSettings) -> str:
    """The app's external URL, "" while the load balancer has no address."""
    if not address:
        return ""
    host = f"[{address}]" if ":" in address else address  # an IPv6 address
    return f"http://{host}:{app.service_port}/"


def external_ip_note(address: str, app: AppSettings, cluster: ClusterSettings) -> str:
    """What to do while there is no external address ("" once there is one)."""
    if address:
        return ""
    ns = cluster.namespace
    if app.service_type == "LoadBalancer":
        return (
            "pending: run `minikube tunnel` in another terminal (minikube), then "
            "`pulumi up --refresh` (re-runs the program, so externalIp and url are filled in; "
            f"`pulumi refresh` alone does not) or `kubectl -n {ns} get svc` to see the address; "
            "other clusters need a LoadBalancer controller"
        )
    if app.service_type == "NodePort":
        return (
            f"NodePort: reach it at a node address, e.g. `minikube service -n {ns} --url articles`"
        )
    return f"ClusterIP: no external address; use `kubectl -n {ns} port-forward svc/articles 8080`"


def skipped_report(s: Settings) -> dict[str, Any]:
    """loadDistribution when no verification runs."""
    if s.load.mode == "off":
        reason = "loadgenMode is off: no load, nothing to verify"
    elif not s.verify.enabled:
        reason = "verifyEnabled is false"
    else:
        reason = f"loadgenMode is {s.load.mode}: only the job mode is verified"
    return {"verdict": "skipped", "reason": reason}
