"""Which config changes re-run the load and the verification, and which leave the report be.

The verification's baseline (and with it the fortio Job and the check, components/verification.py)
runs again only when something that can change the split or its verdict changes: the image, the
app's pods and Service, the load, the verification, the state store, the target. A dashboard,
quota or monitoring-label change fires no load at a live Service. `make reverify` re-runs on
purpose. Every key of Pulumi.yaml is classified below; tests/test_reverification.py fails for a
key in neither table, and checks each against the program's real behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.settings import Settings

# key -> why a change re-runs the load and the check.
RERUNS_LOAD: dict[str, str] = {
    "kubeContext": "the check's commands name the context",
    "clusterIdentifier": "a new id replaces every object: new pods",
    "namespace": "another namespace: new pods",
    "imageRef": "another image",
    "imageRepository": "another image",
    "imagePush": "another image reference",
    "imageRegistryServer": "another image reference",
    "imageRegistryUsername": "the pods' pull secret: a rollout",
    "imagePullPolicy": "the pod template: a rollout",
    "imageBase": "another image",
    "imageLoadCommand": "the image is loaded anew",
    "appReplicas": "the number of pods the split is judged over",
    "appWorkers": "the pod template: a rollout",
    "appCpuRequest": "the pod template: a rollout",
    "appCpuLimit": "the pod template: a rollout",
    "appMemoryRequest": "the pod template: a rollout",
    "appMemoryLimit": "the pod template: a rollout",
    "drainSeconds": "the pod template: a rollout",
    "terminationGracePeriodSeconds": "the pod template: a rollout",
    # It changes nothing the load measures, but the rollout replaces every pod the last
    # report names (pods and their nodes): a report of pods that are gone would be stale.
    "nodeLossTolerationSeconds": "the pod template: a rollout",
    "serviceType": "the Service the load goes through",
    "servicePort": "the Service the load goes through",
    "sessionAffinity": "sticky sessions: another verdict",
    "networkPolicy": "whether fortio's traffic is admitted",
    "ingressAllowedCidrs": "whether fortio's traffic is admitted",
    "clusterPodCidrs": "which addresses the app admits (the verification's reads among them)",
    "hpaEnabled": "the number of pods under load",
    "hpaMinReplicas": "the number of pods under load",
    "hpaMaxReplicas": "the number of pods under load",
    "hpaCpuUtilization": "the number of pods under load",
    "metricsServerEnabled": "whether the HPA runs, and the report's CPU column",
    "monitoring": "the app pods' scrape annotations: a rollout",
    "monitoringDecision": "what monitoring auto builds: the pods' scrape annotations",
    "loadgenMode": "the load",
    "loadgenPods": "the load",
    "loadgenConnections": "the load",
    "loadgenRequests": "the load",
    "loadgenQps": "the load",
    "loadgenPath": "the load",
    "loadgenKeepalive": "the load",
    "loadgenTimeoutSeconds": "the load",
    "loadgenImage": "the load",
    "verifyEnabled": "the verification",
    "verifySignificance": "the verdict",
    "verifyTimeoutSeconds": "the verification",
    "verifyFailOnImbalance": "the verdict's consequence",
    "stateStore": "the app's pods and what the report counts",
    "stateStoreImage": "the state store",
    "stateStoreCpu": "the state store",
    "stateStoreMemory": "the state store",
}

# key -> why a change leaves the last report standing.
KEEPS_THE_REPORT: dict[str, str] = {
    "serviceAwaitLoadBalancer": "only whether `up` waits for the address",
    "pdbMaxUnavailable": "the disruption budget: no pod changes",
    "metricsServerInsecureTls": "metrics-server's flags: not the app's pods",
    "metricsServerDecision": "which metrics-server serves the metrics; the HPA is the same",
    "monitoringLabels": "labels of the PodMonitor/ServiceMonitor",
    "prometheusNamespace": "a NetworkPolicy rule for Prometheus only",
    "grafanaDashboard": "the dashboard ConfigMap",
    "grafanaDashboardNamespace": "the dashboard ConfigMap",
    "quotaEnabled": "the namespace's ResourceQuota/LimitRange",
    "quotaMaxCpu": "the quota's ceiling",
    "quotaMaxMemory": "the quota's ceiling",
    "quotaDrillPods": "the quota's headroom for drills",
}


def load_trigger(s: Settings, pod_annotations: Mapping[str, str]) -> str:
    """What the verification's triggers hold besides the image: the settings of RERUNS_LOAD
    (the pods' scrape annotations stand for `monitoring`: only they reach the app's pods)."""
    app = s.app
    return repr(
        (
            s.cluster,
            s.image,
            (app.replicas, app.workers, app.resources, app.drain_seconds),
            (app.termination_grace_seconds, app.service_type, app.service_port),
            app.node_loss_toleration_seconds,
            (app.session_affinity, app.network_policy, app.ingress_cidrs, app.pod_cidrs),
            s.autoscaling,
            s.metrics_server.mode,
            sorted(pod_annotations.items()),
            s.load,
            s.verify,
            s.state_store,
        )
    )
