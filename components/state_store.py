"""StateStore: one Redis the article pods share for view counters and sessions (stateStore: redis).

The walkthrough's closing notes: behind a load balancer a user's next request lands on another
pod (sessions), and several pods update the same numbers (consistency). The app keeps both in
this Redis: INCR for the counters (atomic in the server), a list per session id for "recently
read". What it creates, all in the app's namespace:

- a Secret with the address and password for the app (mounted as files, never env or image)
  and Redis' `requirepass` include; the password is the secret config stateStorePassword or a
  pulumi-random RandomPassword kept (encrypted) in the stack's state;
- a ConfigMap with redis.conf: append-only file fsynced every second (an acknowledged INCR
  survives a crash of the process), maxmemory 3/4 of the memory limit, sessions evicted first;
- a Deployment of one Redis pod (Recreate: never two with separate data), non-root, read-only
  root filesystem, probes, requests = limits; its template carries a restart trigger keyed by a
  pulumi-random salt kept in the state (restart_trigger), never a plain hash of the password;
- a ClusterIP Service `redis`, and NetworkPolicies: Redis admits only the app pods on 6379 and
  may open no connection; the app pods may reach Redis and DNS (their own policy allows no
  egress at all, policies add up).

One Redis is one point of failure, deliberately without a PodDisruptionBudget: with one replica
a PDB either blocks every node drain (minAvailable 1) or protects nothing. The app is built for
its absence (pages still served, counters shown as unavailable, readiness unaffected), and its
data lives in an emptyDir: a restarted container keeps it, a pod moved to another node does
not. For durable or highly available state use a PersistentVolumeClaim or a managed Redis
(with replicas and Sentinel), which the app reaches the same way through the Secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import labels, network
from components.pod_security import container_security_context, pod_security_context
from components.settings import StateStoreSettings, memory_bytes

TYPE_TOKEN = "selfheal-lb:state:StateStore"
NAME = "redis"
PORT = 6379
PORT_NAME = "redis"
SECRET_NAME = "articles-state-store"
CONFIG_NAME = "redis-config"
# Any non-root id works for Redis (it needs no passwd entry; only /data is written and fsGroup
# makes it writable); above 10000 so it never maps onto a host account (checkov CKV_K8S_40).
RUN_AS_ID = 10999
CONFIG_DIR = "/usr/local/etc/redis"
SECRET_DIR = "/run/secrets/redis"
DATA_DIR = "/data"
PASSWORD_LENGTH = 32
# Where the app reads the Secret's keys (app/articles/config.py: REDIS_URL_FILE, …).
APP_SECRET_DIR = "/etc/articles/state-store"
CONFIG_HASH = "selfheal-lb/config-hash"
SALT_BYTES = 32


def restart_trigger(salt_hex: str, conf: str, password: str) -> str:
    """The pod template's restart trigger: changes with the config or the password, yet is an
    HMAC keyed by a random salt kept (secret) in the stack's state, so whoever can read the
    Deployment (or its old ReplicaSets) cannot test password guesses against it offline."""
    message = f"{conf}\0{password}".encode()
    return hmac.new(bytes.fromhex(salt_hex), message, hashlib.sha256).hexdigest()[:16]


def redis_conf(memory_limit: str) -> str:
    maxmemory = memory_bytes(memory_limit) * 3 // 4
    return "\n".join(
        [
            "# Written by selfheal-lb (components/state_store.py).",
            "bind 0.0.0.0",
            f"port {PORT}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {DATA_DIR}",
            # Redis writes the AOF before it answers: a killed process loses no acknowledged
            # write; the fsync each second bounds what a node crash can lose.
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"maxmemory {maxmemory}",
            # Sessions carry a TTL and go first under memory pressure; counters have none and
            # are never evicted (writes fail instead, and the app reports them as failed).
            "maxmemory-policy volatile-lru",
            f"include {SECRET_DIR}/auth.conf",
            "",
        ]
    )


@dataclass(frozen=True)
class StateStoreArgs:
    settings: StateStoreSettings
    namespace: pulumi.Input[str]
    instance: str  # app.kubernetes.io/instance, normally the stack name
    app_pod_labels: dict[str, str]  # selector labels of the article pods (the only clients)
    network_policy: bool = True
    password: pulumi.Input[str] | None = None  # config secret; None = generate one
    pull_policy: str = "IfNotPresent"


class StateStore(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]
    service_dns: pulumi.Output[str]

    def __init__(
        self, name: str, args: StateStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        self.selector_labels = labels.selector_labels(NAME, args.instance)
        self.pod_labels = labels.pod_labels(NAME, args.instance, "state-store")
        object_labels = labels.object_labels(NAME, args.instance, "state-store")

        if args.password is None:
            generated = random.RandomPassword(
                f"{name}-password",
                length=PASSWORD_LENGTH,
                # Alphanumeric: safe in a URL, a config line and a shell without quoting.
                special=False,
                opts=child,
            )
            password: pulumi.Output[str] = generated.result
        else:
            password = pulumi.Output.secret(args.password)

        self.policies = self._network_policies(name, args, ns, object_labels)

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": NAME, "namespace": ns, "labels": object_labels},
            spec={
                "type": "ClusterIP",
                "selector": self.selector_labels,
                "ports": [
                    {"name": PORT_NAME, "protocol": "TCP", "port": PORT, "target_port": PORT_NAME}
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.service_dns = pulumi.Output.concat(
            self.service.metadata.apply(lambda m: m.name), ".", ns, ".svc.cluster.local"
        )

        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": SECRET_NAME, "namespace": ns, "labels": object_labels},
            type="Opaque",
            string_data=pulumi.Output.secret(
                pulumi.Output.all(self.service_dns, password).apply(
                    lambda v: {
                        "url": f"redis://{v[0]}:{PORT}/0",
                        "password": v[1],
                        "auth.conf": f"requirepass {v[1]}\n",
                    }
                )
            ),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.secret_name = self.secret.metadata.apply(lambda m: m.name)

        conf = redis_conf(s.memory)
        self.config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": CONFIG_NAME, "namespace": ns, "labels": object_labels},
            data={"redis.conf": conf},
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        # A new config or password restarts Redis (the pod reads both only at start). Keyed by a
        # salt that never leaves the state: an unsalted hash of a user-chosen password in the
        # pod template could be brute-forced by anyone allowed to `get deployments`.
        self.salt = random.RandomBytes(f"{name}-restart-salt", length=SALT_BYTES, opts=child)
        config_hash = pulumi.Output.all(self.salt.hex, password).apply(
            lambda v: restart_trigger(v[0], conf, v[1])
        )
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={"name": NAME, "namespace": ns, "labels": object_labels},
            spec=self._deployment_spec(args, config_hash),
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                # Pods start only once the rule admitting their clients exists, and with
                # their config and secret in place (else they wait in ContainerCreating).
                depends_on=[*self.policies, self.secret, self.config],
            ),
        )

        self.register_outputs(
            {
                "serviceDns": self.service_dns,
                "secretName": self.secret_name,
                "image": s.image,
            }
        )

    def _deployment_spec(
        self, args: StateStoreArgs, config_hash: pulumi.Output[str]
    ) -> dict[str, Any]:
        s = args.settings
        auth_ping = (
            f'REDISCLI_AUTH="$(cat {SECRET_DIR}/password)" '
            f"redis-cli -h 127.0.0.1 -p {PORT} ping | grep -qx PONG"
        )
        container: dict[str, Any] = {
            "name": NAME,
            "image": s.image,
            "image_pull_policy": args.pull_policy,
            # Redis' own binary and our config, whatever the image's entrypoint does (the
            # official image's would chown and switch user, which needs root).
            "command": ["redis-server", f"{CONFIG_DIR}/redis.conf"],
            "ports": [{"name": PORT_NAME, "container_port": PORT, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": s.cpu, "memory": s.memory},
                "limits": {"cpu": s.cpu, "memory": s.memory},
            },
            # Listening comes first (while the AOF loads); ready once it answers PONG to an
            # authenticated client.
            "startup_probe": {
                "tcp_socket": {"port": PORT_NAME},
                "period_seconds": 2,
                "failure_threshold": 30,
            },
            "liveness_probe": {
                "tcp_socket": {"port": PORT_NAME},
                "period_seconds": 10,
                "timeout_seconds": 2,
                "failure_threshold": 3,
            },
            "readiness_probe": {
                "exec": {"command": ["sh", "-c", auth_ping]},
                "period_seconds": 5,
                "timeout_seconds": 2,
                "failure_threshold": 2,
            },
            "security_context": container_security_context(RUN_AS_ID),
            "volume_mounts": [
                {"name": "data", "mount_path": DATA_DIR},
                {"name": "config", "mount_path": CONFIG_DIR, "read_only": True},
                {"name": "secret", "mount_path": SECRET_DIR, "read_only": True},
            ],
        }
        return {
            "replicas": 1,
            "revision_history_limit": 3,
            "selector": {"match_labels": self.selector_labels},
            # Never two Redis pods at once, each with its own half of the data.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": self.pod_labels,
                    "annotations": {CONFIG_HASH: config_hash},
                },
                "spec": {
                    "automount_service_account_token": False,
                    "enable_service_links": False,
                    "termination_grace_period_seconds": 30,
                    "security_context": pod_security_context(RUN_AS_ID, fs_group=True),
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "empty_dir": {"size_limit": "1Gi"}},
                        {"name": "config", "config_map": {"name": CONFIG_NAME}},
                        {
                            "name": "secret",
                            "secret": {
                                "secret_name": SECRET_NAME,
                                "items": [
                                    {"key": "auth.conf", "path": "auth.conf"},
                                    {"key": "password", "path": "password"},
                                ],
                                "default_mode": 0o440,
                            },
                        },
                    ],
                },
            },
        }

    def _network_policies(
        self,
        name: str,
        args: StateStoreArgs,
        ns: pulumi.Input[str],
        object_labels: dict[str, str],
    ) -> list[k8s.networking.v1.NetworkPolicy]:
        if not args.network_policy:
            return []
        child = pulumi.ResourceOptions(parent=self)
        from_app = {"pod_selector": {"match_labels": dict(args.app_pod_labels)}}
        redis_port = {"protocol": "TCP", "port": PORT}
        ingress = k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata={"name": f"{NAME}-ingress", "namespace": ns, "labels": object_labels},
            spec={
                "pod_selector": {"match_labels": self.selector_labels},
                "policy_types": ["Ingress", "Egress"],
                "ingress": [{"from": [from_app], "ports": [redis_port]}],
                "egress": [],
            },
            opts=child,
        )
        # The app's own policy allows no egress; this one adds Redis and DNS (for its name).
        # DNS: any pod in kube-system on 53, as fortio's policy does.
        app_egress = k8s.networking.v1.NetworkPolicy(
            f"{name}-app-egress",
            metadata={
                "name": f"{labels.APP_NAME}-to-{NAME}",
                "namespace": ns,
                "labels": object_labels,
            },
            spec={
                "pod_selector": {"match_labels": dict(args.app_pod_labels)},
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [{"pod_selector": {"match_labels": self.selector_labels}}],
                        "ports": [redis_port],
                    },
                    network.dns_egress(),
                ],
            },
            opts=child,
        )
        return [ingress, app_egress]
