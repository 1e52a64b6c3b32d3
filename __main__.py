"""selfheal-lb: the article service behind a load balancer, loaded by fortio and verified.

Reads the stack config into typed settings, builds the components, exports the outputs.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components.app import ArticleApp, ArticleAppArgs
from components.image import ArticleImage, ArticleImageArgs
from components.loadgen import LoadGenerator, LoadGeneratorArgs
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.outputs import external_ip_note, skipped_report, url
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

# Explicit provider: the configured context, not whatever the ambient default would pick.
# Server-side apply is v4's default; stated so a provider upgrade cannot silently change it.
provider = k8s.Provider(
    "k8s", context=s.cluster.kube_context or None, enable_server_side_apply=True
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

metrics = (
    MetricsServer("metrics-server", MetricsServerArgs(s.metrics_server), k8s_opts)
    if s.metrics_server.enabled
    else None
)

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
        metrics_available=s.metrics_server.available,
        namespace=s.cluster.namespace,
        image_ref=image.image_ref,
        pull_policy=s.image.pull_policy,
        instance=s.stack,
        state_store_secret=store_secret,
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
    # Re-run the check, and with it the load, when the app or the load changes.
    triggers = [image.image_ref, s.app.replicas, repr(s.load), s.state_store.kind]
    verification = LoadVerification(
        "verification",
        LoadVerificationArgs(
            verify=s.verify,
            load=s.load,
            namespace=s.cluster.namespace,
            selector=app.selector,
            expected_pods=s.app.replicas,
            kube_context=s.cluster.kube_context,
            triggers=triggers,
        ),
        # The baseline is read once the app's pods are ready (and metrics-server serves).
        pulumi.ResourceOptions(
            depends_on=[app] + ([metrics] if metrics else []) + ([store] if store else [])
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
    load_distribution = verification.report
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
