"""StateStore (stateStore: redis) in the real program under Pulumi mocks: what Redis gets, what
the app gets, that only the app may talk to Redis, and that the objects pass the schema, Pod
Security `restricted` and the policy pack."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version
from test_pod_security import restricted_violations

from components import render
from components.offline import ProgramFailed, ProgramRun, run_program, secret_value, stack_config
from components.state_store import APP_SECRET_DIR, CONFIG_DIR, SECRET_DIR

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "policy") not in sys.path:
    sys.path.insert(0, str(ROOT / "policy"))
from evaluate import Resource, evaluate  # noqa: E402

APP_SELECTOR = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
REDIS_SELECTOR = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "dev"}


def program(**overrides: Any) -> ProgramRun:
    config = stack_config("dev")
    config.update({f"selfheal-lb:{k}": v for k, v in {"stateStore": "redis", **overrides}.items()})
    return run_program(config)


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return program()


def objects(run: ProgramRun) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render.k8s_objects(run)}


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def test_without_a_store_nothing_of_it_exists_and_the_app_has_no_store_settings() -> None:
    config = stack_config("dev")
    assert config["selfheal-lb:stateStore"] == "none"
    plain = objects(run_program(config))
    assert ("Deployment", "redis") not in plain and ("Secret", "articles-state-store") not in plain
    app = pod_spec(plain[("Deployment", "articles")])
    assert not [e for e in app["containers"][0]["env"] if e["name"].startswith("REDIS")]
    assert [v["name"] for v in app["volumes"]] == ["tmp"]


def test_redis_pod_pinned_image_one_replica_recreate_guaranteed_resources(run) -> None:  # type: ignore[no-untyped-def]
    redis = objects(run)[("Deployment", "redis")]
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["strategy"] == {"type": "Recreate"}
    (c,) = pod_spec(redis)["containers"]
    assert c["image"] == "redis:7.4.2-bookworm"
    assert c["command"] == ["redis-server", f"{CONFIG_DIR}/redis.conf"]
    assert (
        c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "250m", "memory": "128Mi"}
    )
    assert c["startupProbe"]["tcpSocket"] and c["livenessProbe"]["tcpSocket"]
    assert "redis-cli" in c["readinessProbe"]["exec"]["command"][-1]
    assert "REDISCLI_AUTH" in c["readinessProbe"]["exec"]["command"][-1]
    assert not c.get("env"), "no password in the environment"


def test_config_and_password_files_line_up(run) -> None:  # type: ignore[no-untyped-def]
    plain = objects(run)
    conf = plain[("ConfigMap", "redis-config")]["data"]["redis.conf"]
    assert f"maxmemory {128 * 2**20 * 3 // 4}" in conf.splitlines()
    assert "appendonly yes" in conf and "appendfsync everysec" in conf
    assert "maxmemory-policy volatile-lru" in conf
    assert f"include {SECRET_DIR}/auth.conf" in conf.splitlines()
    redis = pod_spec(plain[("Deployment", "redis")])
    mounts = {m["name"]: m["mountPath"] for m in redis["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in redis["volumes"]}
    assert (
        mounts["config"] == CONFIG_DIR and volumes["config"]["configMap"]["name"] == "redis-config"
    )
    assert mounts["secret"] == SECRET_DIR
    assert {i["key"] for i in volumes["secret"]["secret"]["items"]} == {"auth.conf", "password"}
    assert mounts["data"] == "/data" and "emptyDir" in volumes["data"]


def test_the_secret_is_generated_secret_and_points_at_the_service(run) -> None:  # type: ignore[no-untyped-def]
    (password,) = run.of_type("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] == 32 and password.inputs["special"] is False
    secret = run.named("state-store-secret")
    is_secret, data = secret_value(secret.inputs["stringData"])
    assert is_secret, "the Secret's data must be a Pulumi secret (encrypted in the state)"
    assert data["url"] == "redis://redis.selfheal-lb-dev.svc.cluster.local:6379/0"
    assert data["auth.conf"] == f"requirepass {data['password']}\n"
    assert len(data["password"]) == 32
    # The rendered manifest hides the values and keeps the keys.
    rendered = objects(run)[("Secret", "articles-state-store")]
    assert set(rendered["stringData"]) == {"url", "password", "auth.conf"}
    assert data["password"] not in str(rendered)


def test_the_secret_can_be_rendered_for_applying(run) -> None:  # type: ignore[no-untyped-def]
    """What an executor without the engine (make e2e) applies: the values, not the redaction."""
    obj = render.k8s_object(run.named("state-store-secret"), reveal_secrets=True)
    assert obj is not None
    _, data = secret_value(run.named("state-store-secret").inputs["stringData"])
    assert obj["stringData"] == data
    assert (
        render.k8s_object(run.named("state-store-secret"))["stringData"]["password"]
        != (data["password"])
    )


def test_a_configured_password_is_used_and_nothing_is_generated() -> None:
    run = program(stateStorePassword="chosen-by-the-operator")
    assert not run.of_type("random:index/randomPassword:RandomPassword")
    is_secret, data = secret_value(run.named("state-store-secret").inputs["stringData"])
    assert is_secret and data["password"] == "chosen-by-the-operator"


def test_the_app_mounts_address_and_password_as_files_and_waits_for_the_secret(run) -> None:  # type: ignore[no-untyped-def]
    app = pod_spec(objects(run)[("Deployment", "articles")])
    (c,) = app["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["REDIS_URL_FILE"] == f"{APP_SECRET_DIR}/url"
    assert env["REDIS_PASSWORD_FILE"] == f"{APP_SECRET_DIR}/password"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "state-store")
    assert mount == {"name": "state-store", "mountPath": APP_SECRET_DIR, "readOnly": True}
    volume = next(v for v in app["volumes"] if v["name"] == "state-store")["secret"]
    assert volume["secretName"] == "articles-state-store"
    assert {i["path"] for i in volume["items"]} == {"url", "password"}
    secret_urn = run.named("state-store-secret").urn
    assert secret_urn in run.named("app-deployment").dependencies
    # The baseline (and so the load) starts once Redis is ready: the snapshot command itself
    # depends on the store (a component's depends_on does not reach its children).
    snapshot = run.named("verification-snapshot")
    assert run.named("state-store-deployment").urn in snapshot.dependencies


def test_only_the_app_pods_reach_redis_and_redis_reaches_nothing(run) -> None:  # type: ignore[no-untyped-def]
    plain = objects(run)
    redis_pod = plain[("Deployment", "redis")]["spec"]["template"]["metadata"]["labels"]
    app_pod = plain[("Deployment", "articles")]["spec"]["template"]["metadata"]["labels"]
    ingress = plain[("NetworkPolicy", "redis-ingress")]["spec"]
    assert ingress["podSelector"]["matchLabels"].items() <= redis_pod.items()
    assert ingress["policyTypes"] == ["Ingress", "Egress"] and ingress["egress"] == []
    (rule,) = ingress["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": APP_SELECTOR}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    assert not APP_SELECTOR.items() <= redis_pod.items(), "Redis is not an app pod"
    assert plain[("Service", "redis")]["spec"]["selector"] == REDIS_SELECTOR
    assert plain[("Service", "redis")]["spec"]["type"] == "ClusterIP"
    egress = plain[("NetworkPolicy", "articles-to-redis")]["spec"]
    assert egress["podSelector"]["matchLabels"].items() <= app_pod.items()
    assert egress["policyTypes"] == ["Egress"]
    to_redis, dns = egress["egress"]
    assert to_redis["to"] == [{"podSelector": {"matchLabels": REDIS_SELECTOR}}]
    assert {p["port"] for p in dns["ports"]} == {53}
    off = objects(program(networkPolicy=False))
    assert not [k for k in off if k[0] == "NetworkPolicy"]


@pytest.mark.parametrize("version", ["1.30", latest_version()])
def test_the_objects_validate_strictly(run, version: str) -> None:  # type: ignore[no-untyped-def]
    for (kind, name), obj in objects(run).items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{kind}/{name} ({version}): {err.message}")


def test_redis_is_admitted_by_pod_security_restricted(run) -> None:  # type: ignore[no-untyped-def]
    redis = objects(run)[("Deployment", "redis")]
    assert redis["metadata"]["namespace"] == "selfheal-lb-dev"
    assert restricted_violations(pod_spec(redis)) == []
    c = pod_spec(redis)["containers"][0]["securityContext"]
    assert c["readOnlyRootFilesystem"] is True and c["runAsNonRoot"] is True


def test_the_stack_with_redis_passes_every_policy(run) -> None:  # type: ignore[no-untyped-def]
    resources = [
        Resource(r.type, r.name, copy.deepcopy(r.inputs), r.urn) for r in run.resources if r.custom
    ]
    result = evaluate(resources)
    assert [str(v) for v in result.violations] == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"stateStore": "memcached"},
            "'selfheal-lb:stateStore' is 'memcached': must be one of none, redis",
        ),
        ({"stateStoreImage": "redis:latest"}, "'selfheal-lb:stateStoreImage' is 'redis:latest'"),
        ({"stateStoreImage": "redis"}, "'selfheal-lb:stateStoreImage' is 'redis'"),
        ({"stateStoreMemory": "16Mi"}, "at least 32Mi"),
        ({"stateStoreCpu": "lots"}, "'selfheal-lb:stateStoreCpu' is 'lots'"),
    ],
)
def test_bad_store_config_is_one_line(overrides: dict, message: str) -> None:
    with pytest.raises(ProgramFailed) as failed:
        program(**overrides)
    assert len(failed.value.errors) == 1 and message in failed.value.errors[0]


CHECKOV = ROOT / ".venv-scan" / "bin" / "checkov"


@pytest.mark.slow  # runs checkov
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov not installed yet: run `make scan`")
def test_checkov_finds_nothing_in_the_stack_with_redis(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    for obj in render.k8s_objects(run):
        (tmp_path / render.file_name(obj)).write_text(render.dump(obj))
    assert (tmp_path / "deployment-selfheal-lb-dev-redis.yaml").exists()
    result = subprocess.run(
        [str(ROOT / "scripts" / "scan.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


# --- the restart trigger reveals nothing about the password ---------------------------------


def _readable(run: ProgramRun) -> str:
    """Everything in the namespace a `get` (not of Secrets) shows: every object but Secrets."""
    return str([o for o in _revealed(run) if o["kind"] != "Secret"])


def _revealed(run: ProgramRun) -> list[dict]:
    """The objects as applied (secret-tainted values shown, as the cluster stores them)."""
    return [o for r in run.resources if (o := render.k8s_object(r, reveal_secrets=True))]


def _with_salt(salt: bytes):  # type: ignore[no-untyped-def]
    """The program's outputs with the RandomBytes salt replaced (a different stack's state)."""
    import base64

    from components import offline

    def fake(rec):  # type: ignore[no-untyped-def]
        if rec.type == "random:index/randomBytes:RandomBytes":
            return {"hex": salt.hex(), "base64": base64.b64encode(salt).decode()}
        return offline.realistic_outputs(rec, preview=False)

    return fake


def _trigger(run: ProgramRun) -> str:
    redis = objects_revealed(run)[("Deployment", "redis")]
    return str(redis["spec"]["template"]["metadata"]["annotations"]["selfheal-lb/config-hash"])


def objects_revealed(run: ProgramRun) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in _revealed(run)}


def test_the_restart_trigger_is_no_function_of_the_password_alone() -> None:
    """Same password, two stacks (two salts in state): different triggers, so a reader of the
    Deployment cannot test guesses offline; nothing readable holds the old unsalted hash."""
    import hashlib

    from components.state_store import redis_conf

    password = "summer2026"  # a guessable, user-chosen password
    config = stack_config("dev")
    config.update({"selfheal-lb:stateStore": "redis", "selfheal-lb:stateStorePassword": password})
    one = run_program(config, fake_outputs=_with_salt(b"\x01" * 32))
    two = run_program(config, fake_outputs=_with_salt(b"\x02" * 32))
    assert _trigger(one) != _trigger(two)
    unsalted = hashlib.sha256((redis_conf("128Mi") + password).encode()).hexdigest()
    for run in (one, two):
        readable = _readable(run)
        assert password not in readable
        assert unsalted[:8] not in readable and hashlib.sha256(password.encode()).hexdigest()[
            :8
        ] not in readable
    # The salt itself is a secret output of the state, never in an object.
    (salt,) = one.of_type("random:index/randomBytes:RandomBytes")
    assert salt.inputs["length"] == 32
    assert ("01" * 32) not in _readable(one)


def test_the_restart_trigger_still_follows_the_password_and_the_config() -> None:
    """A new password or redis.conf restarts Redis; the same ones (same salt) never do."""
    config = stack_config("dev")
    config.update({"selfheal-lb:stateStore": "redis", "selfheal-lb:stateStorePassword": "a" * 20})
    salt = _with_salt(b"\x07" * 32)
    base = _trigger(run_program(config, fake_outputs=salt))
    assert _trigger(run_program(config, fake_outputs=salt)) == base
    other_password = {**config, "selfheal-lb:stateStorePassword": "b" * 20}
    assert _trigger(run_program(other_password, fake_outputs=salt)) != base
    other_conf = {**config, "selfheal-lb:stateStoreMemory": "256Mi"}
    assert _trigger(run_program(other_conf, fake_outputs=salt)) != base
