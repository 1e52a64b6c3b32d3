"""selfheal-lb: the article service behind a load balancer, loaded by fortio and verified.

Reads the stack config into typed settings, builds the components, exports the outputs.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import metrics_plan
from components.app import ArticleApp, ArticleAppArgs
from components.chart_cache import ChartUnavailable
from components.image import ArticleImage, ArticleImageArgs
from components.loadgen import LoadGenerator, LoadGeneratorArgs
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.monitoring import Monitoring, MonitoringArgs, scrape_annotations
from components.operator_probe import resolve_mode
from components.outputs import external_ip_note, skipped_report, url
from components.quota import (
    NamespaceQuota,
    NamespaceQuotaArgs,
    PodShape,
    check_fits,
    namespace_need,
    quota_hard,
    single_pod_shape,
)
from components.rerun import load_trigger
from components.settings import ConfigError, load_settings, present_config_keys
from components.state_store import StateStore, StateStoreArgs
from components.verification import LoadVerification, LoadVerificationArgs

PROJECT_DIR = Path(__file__).resolve().parent
# Exit code with which Pulumi's language host reports "error already shown": no traceback, and
# the engine adds no "Program exited with non-zero exit code" line.
ERROR_SHOWN = 32

config = pulumi.Config()
try:
    s = load_settings(
        config,
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        app_dir=Path("app"),  # relative to the project dir: the same on every machine
        present_keys=present_config_keys(),
    )
except ConfigError as err:
    pulumi.log.error(str(err))
    sys.exit(ERROR_SHOWN)

# metrics-server: one per cluster. Install it only where the cluster serves no metrics API yet
# (or this stack installed it); otherwise use what is there (components/metrics_plan.py).
metrics_api = metrics_plan.detect(s.cluster.kube_context)
owner = metrics_plan.stack_id(s.project, s.stack)
plan = metrics_plan.decide(
    s.metrics_server, metrics_api, owner=owner, namespace=s.cluster.namespace
)
if plan.error:
    pulumi.log.error(plan.error)
    sys.exit(ERROR_SHOWN)
for warning in plan.warnings:
    pulumi.log.warn(warning)

# Pods other components add to the namespace, so the quota holds them too: the optional Redis.
extra_pods: list[PodShape] = []
if s.state_store.enabled:
    extra_pods.append(single_pod_shape("redis", s.state_store.cpu, s.state_store.memory))
quota_need = namespace_need(s, extra_pods, metrics_available=plan.metrics_available)
if s.quota.enabled:
    try:
        check_fits(s, quota_need)  # refuses a config that cannot fit, saying by how much
    except ConfigError as err:
        pulumi.log.error(str(err))
        sys.exit(ERROR_SHOWN)

# Explicit provider: the configured context, not whatever the ambient default would pick.
# Server-side apply is v4's default; stated so a provider upgrade cannot silently change it.
# cluster_identifier: a stable id, so setting or renaming kubeContext later is an update of the
# provider, not a replacement of every object under it (pulumi-kubernetes' DiffConfig; adding
# the id to an existing stack is not a replacement either). delete_unreachable stays unset
# here: `make destroy` sets PULUMI_K8S_DELETE_UNREACHABLE only once it found the cluster gone
# (scripts/stack.sh), so a passing outage can never drop live objects from the state.
provider = k8s.Provider(
    "k8s",
    context=s.cluster.kube_context or None,
    cluster_identifier=s.cluster.cluster_identifier,
    enable_server_side_apply=True,
)
k8s_opts = pulumi.ResourceOptions(providers={"kubernetes": provider})

image = ArticleImage(
    "image",
    ArticleImageArgs(
        settings=s.image,
        source_root=PROJECT_DIR,
        registry_password=config.get_secret("imageRegistryPassword"),
    ),
)

metrics = None
if plan.install:
    try:
        chart = metrics_plan.chart_path()
    except ChartUnavailable as missing:
        offline_facts = metrics_plan.OFFLINE
        if offline_facts is None or not offline_facts.render_without_chart:
            pulumi.log.error(str(missing))
            sys.exit(ERROR_SHOWN)
        pulumi.log.warn(f"{missing}; metrics-server's objects are left out of this render")
    else:
        metrics = MetricsServer(
            "metrics-server",
            MetricsServerArgs(
                settings=s.metrics_server,
                chart=chart,
                owner_stack=owner,
                owner_namespace=s.cluster.namespace,
                kube_context=s.cluster.kube_context,
                cluster_identifier=s.cluster.cluster_identifier,
            ),
            k8s_opts,
        )

# `monitoring: auto` asks the cluster (the provider's context) whether the operator's CRDs exist;
# a decision recorded by an earlier `make up` (monitoringDecision) is kept whatever it answers.
monitoring_mode = resolve_mode(
    s.monitoring.mode, s.cluster.kube_context, recorded=s.monitoring.decision
)
if monitoring_mode.note:
    (pulumi.log.warn if monitoring_mode.warn else pulumi.log.info)(monitoring_mode.note)


def quota_for(namespace: pulumi.Output[str]) -> list[pulumi.Resource]:
    """The namespace's ResourceQuota and LimitRange, in place before any app pod."""
    if not s.quota.enabled:
        return []
    quota = NamespaceQuota(
        "quota",
        NamespaceQuotaArgs(settings=s, need=quota_need, namespace=namespace, instance=s.stack),
        k8s_opts,
    )
    return [quota]


# The app's pods mount the state store's Secret, which lives in the app's namespace: a deferred
# output breaks that cycle, and the Deployment still waits for the Secret.
store_secret, resolve_store_secret = (
    pulumi.deferred_output() if s.state_store.enabled else (None, None)
)
app = ArticleApp(
    "app",
    ArticleAppArgs(
        settings=s.app,
        autoscaling=s.autoscaling,
        metrics_available=plan.metrics_available,
        namespace=s.cluster.namespace,
        image_ref=image.image_ref,
        pull_policy=s.image.pull_policy,
        instance=s.stack,
        pod_annotations=scrape_annotations(monitoring_mode.mode),
        before_pods=quota_for,
        state_store_secret=store_secret,
    ),
    k8s_opts,
)

if monitoring_mode.mode != "off":
    Monitoring(
        "monitoring",
        MonitoringArgs(
            settings=s.monitoring,
            mode=monitoring_mode.mode,
            namespace=app.namespace_name,
            namespace_name=s.cluster.namespace,
            instance=s.stack,
            app_selector=app.selector_labels,
            network_policy=s.app.network_policy,
        ),
        k8s_opts,
    )

store = None
if s.state_store.enabled and resolve_store_secret is not None:
    store = StateStore(
        "state-store",
        StateStoreArgs(
            settings=s.state_store,
            namespace=app.namespace_name,
            instance=s.stack,
            app_pod_labels=app.selector_labels,
            network_policy=s.app.network_policy,
            password=config.get_secret("stateStorePassword"),
        ),
        k8s_opts,
    )
    resolve_store_secret(store.secret_name)

verification = None
if s.verify.enabled:
    # The baseline is read once the app's pods are ready, the store answers and the
    # metrics-server in use serves (tests/test_dependency_graph.py).
    reads: list[pulumi.Resource] = [app, *([store] if store else [])]
    # A new image, or a change that can move the split or its verdict, re-runs the baseline
    # and with it the load and the check; a dashboard, quota or label change does not
    # (components/rerun.py classifies every key; tests/test_reverification.py).
    triggers = [image.image_ref, load_trigger(s, scrape_annotations(monitoring_mode.mode))]
    verification = LoadVerification(
        "verification",
        LoadVerificationArgs(
            verify=s.verify,
            load=s.load,
            namespace=s.cluster.namespace,
            selector=app.selector,
            expected_pods=s.app.replicas,
            kube_context=s.cluster.kube_context,
            session_affinity=s.app.session_affinity,
            triggers=triggers,
            reads=metrics.and_before(reads) if metrics else reads,
            expect_store=store is not None,
        ),
    )

load = None
if s.load.mode != "off":
    load = LoadGenerator(
        "loadgen",
        LoadGeneratorArgs(
            load=s.load,
            namespace=app.namespace_name,
            target_url=pulumi.Output.concat(
                "http://", app.service_dns, f":{s.app.service_port}{s.load.path}"
            ),
            instance=s.stack,
            app_pod_labels=app.pod_labels,
            network_policy=s.app.network_policy,
            # The load starts after the verification's baseline, and runs again with it.
            depends_on=[verification.snapshot] if verification else [],
            run_stamp=verification.run_stamp if verification else None,
        ),
        k8s_opts,
    )

if verification is not None and load is not None and load.job is not None:
    verification.after_load(load.job, load.job_name)
    # The report's CPU/memory come from whichever metrics-server is in use: say which.
    load_distribution = verification.report.apply(
        lambda report: {**report, "metricsServer": plan.in_use}
    )
    load_test = verification.load_test
else:
    load_distribution = skipped_report(s)
    load_test = {}

pulumi.export("namespace", app.namespace_name)
pulumi.export("serviceName", app.service_name)
pulumi.export("externalIp", app.external_address)
pulumi.export(
    "externalIpNote",
    app.external_address.apply(lambda address: external_ip_note(address, s.app, s.cluster)),
)
pulumi.export("url", app.external_address.apply(lambda address: url(address, s.app)))
pulumi.export("imageRef", image.image_ref)
pulumi.export("appReplicas", s.app.replicas)
pulumi.export("loadTest", load_test)
pulumi.export("loadDistribution", load_distribution)
pulumi.export("metricsServer", plan.output(metrics_api))
pulumi.export("monitoring", monitoring_mode.mode)
pulumi.export("namespaceQuota", quota_hard(quota_need) if s.quota.enabled else {})
