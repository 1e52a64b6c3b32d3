"""selfheal-lb: the article service behind a load balancer, loaded by fortio and verified.

Reads the stack config into typed settings, builds the components, exports the outputs.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.app import ArticleApp, ArticleAppArgs
from components.image import ArticleImage, ArticleImageArgs
from components.labels import APP_NAME, selector_labels
from components.loadgen import LoadGenerator, LoadGeneratorArgs
from components.metrics_plan import stack_id
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.monitoring import Monitoring, MonitoringArgs, scrape_annotations
from components.namespace import StackNamespace, StackNamespaceArgs
from components.outputs import external_ip_note, skipped_report, url
from components.quota import quota_hard
from components.rerun import load_trigger
from components.settings import ConfigError, load_settings, present_config_keys
from components.stack_plan import plan_stack
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
    # Which metrics-server, which monitoring, how big a quota (components/stack_plan.py).
    plan = plan_stack(s)
except ConfigError as err:
    pulumi.log.error(str(err))
    sys.exit(ERROR_SHOWN)
for warning in plan.warnings:
    pulumi.log.warn(warning)
for note in plan.notes:
    pulumi.log.info(note)

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
if plan.metrics_chart is not None:
    metrics = MetricsServer(
        "metrics-server",
        MetricsServerArgs(
            settings=s.metrics_server,
            chart=plan.metrics_chart,
            owner_stack=stack_id(s.project, s.stack),
            owner_namespace=s.cluster.namespace,
            kube_context=s.cluster.kube_context,
            cluster_identifier=s.cluster.cluster_identifier,
        ),
        k8s_opts,
    )

# The namespace and what holds for every pod in it (Pod Security, default-deny, quota): first.
namespace = StackNamespace(
    "stack-namespace",
    StackNamespaceArgs(
        name=s.cluster.namespace,
        instance=s.stack,
        default_deny=s.app.network_policy,
        quota=plan.quota,
    ),
    k8s_opts,
)
app_pods = selector_labels(APP_NAME, s.stack)

if plan.monitoring != "off":
    Monitoring(
        "monitoring",
        MonitoringArgs(
            settings=s.monitoring,
            mode=plan.monitoring,
            namespace=namespace.name,
            namespace_name=s.cluster.namespace,
            instance=s.stack,
            app_selector=app_pods,
            network_policy=s.app.network_policy,
        ),
        k8s_opts,
    )

store = None
if s.state_store.enabled:
    store = StateStore(
        "state-store",
        StateStoreArgs(
            settings=s.state_store,
            namespace=namespace.name,
            instance=s.stack,
            app_pod_labels=app_pods,
            network_policy=s.app.network_policy,
            password=config.get_secret("stateStorePassword"),
        ),
        k8s_opts,
    )

app = ArticleApp(
    "app",
    ArticleAppArgs(
        settings=s.app,
        autoscaling=s.autoscaling,
        metrics_available=plan.metrics.metrics_available,
        namespace=namespace.name,
        image_ref=image.image_ref,
        pull_policy=s.image.pull_policy,
        instance=s.stack,
        pod_annotations=scrape_annotations(plan.monitoring),
        before_pods=namespace.gates,
        state_store_secret=store.secret_name if store else None,
    ),
    k8s_opts,
)

verification = None
if s.verify.enabled:
    # The baseline is read once the app's pods are ready, the store answers and the
    # metrics-server in use serves (tests/test_dependency_graph.py).
    reads: list[pulumi.Resource] = [app, *([store] if store else [])]
    # A new image, or a change that can move the split or its verdict, re-runs the baseline
    # and with it the load and the check; a dashboard, quota or label change does not
    # (components/rerun.py classifies every key; tests/test_reverification.py).
    triggers = [image.image_ref, load_trigger(s, scrape_annotations(plan.monitoring))]
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
            namespace=namespace.name,
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
        lambda report: {**report, "metricsServer": plan.metrics.in_use}
    )
    load_test = verification.load_test
else:
    load_distribution = skipped_report(s)
    load_test = {}

pulumi.export("namespace", namespace.name)
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
pulumi.export("metricsServer", plan.metrics.output(plan.metrics_api))
pulumi.export("monitoring", plan.monitoring)
pulumi.export("namespaceQuota", quota_hard(plan.quota_need) if plan.quota else {})
