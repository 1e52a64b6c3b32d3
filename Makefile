# selfheal-lb: `make up` stands the stack up, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STACK ?= dev
# make up|destroy|reverify show the target context and ask before changing anything (pulumi's own
# preview and question); YES=1 answers yes up front, as CI=true does. REDECIDE=1: monitoring and
# metrics-server `auto` decide again from the cluster (scripts/stack.sh).
export YES REDECIDE
VENV ?= venv
PY := $(VENV)/bin/python
# A local file backend inside the checkout: no Pulumi Cloud account needed.
LOCAL_BACKEND := file://$(CURDIR)/.pulumi-state
export PULUMI_BACKEND_URL ?= $(LOCAL_BACKEND)
# The published dev passphrase encrypts only the dev stacks of local clusters (dev, kind, local)
# on that local backend. Any other stack on a passphrase backend (file://, s3://, gs://, azblob://)
# brings its own PULUMI_CONFIG_PASSPHRASE (or _FILE), or the Pulumi targets refuse in one line.
DEV_STACKS := dev kind local
PULUMI_GOALS := up preview preview-diff reverify destroy drill node-drill top report-html verify-url
ifeq ($(PULUMI_CONFIG_PASSPHRASE)$(PULUMI_CONFIG_PASSPHRASE_FILE),)
  ifeq ($(PULUMI_BACKEND_URL)$(filter $(STACK),$(DEV_STACKS)),$(LOCAL_BACKEND)$(STACK))
    export PULUMI_CONFIG_PASSPHRASE := selfheal-lb-dev
  else ifeq ($(filter https://%,$(PULUMI_BACKEND_URL)),)
    ifneq ($(filter $(PULUMI_GOALS),$(MAKECMDGOALS)),)
      $(error selfheal-lb: stack '$(STACK)' on $(PULUMI_BACKEND_URL) needs its own PULUMI_CONFIG_PASSPHRASE (the published dev one is only for the dev, kind and local stacks on the checkout's backend; a stack made with it: set PULUMI_CONFIG_PASSPHRASE=selfheal-lb-dev once and run pulumi stack change-secrets-provider passphrase))
    endif
  endif
endif
# The verification command and pulumi itself run with the project's virtualenv first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: help venv tools lint test render up preview reverify destroy bench policy-venv scan cluster cluster-down e2e redis-image

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt app/requirements.txt
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "selfheal-lb: Python 3.11+ is needed (python3 is $$(python3 -V 2>&1))" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt -r app/requirements.txt
	touch $@

venv: $(VENV)/.installed ## create the virtualenv with the pinned packages

tools: ## install haproxy, wrk and the pinned fortio (for the tests)
	./scripts/install-tools.sh

lint: venv ## ruff
	$(VENV)/bin/ruff check .

# Tests run on TEST_WORKERS pytest-xdist workers (most of them wait on processes and the cluster,
# so more workers than cores pays); a module's tests stay on one worker (tests/conftest.py).
TEST_WORKERS ?= 4
test: venv tools lint scan ## every test: unit, real processes on loopback, render + schema validation
	$(PY) -m pytest -n $(TEST_WORKERS)

render: venv ## write the manifests the stack would apply to build/manifests/ (no cluster, no pulumi CLI)
	$(PY) -m components.render --stack $(STACK)

# checkov in its own virtualenv (.venv-scan/, pinned in scripts/scan.sh); the checks it skips
# are listed with their reasons in .checkov.yaml.
scan: render ## checkov over the rendered manifests: 0 failed checks
	./scripts/scan.sh build/manifests

# scripts/stack.sh checks every prerequisite (pulumi, kubectl, a reachable cluster, Docker when
# it must build) and says what is missing before it runs pulumi.
up: venv policy-venv ## pulumi up on the stack's context (shown first; asks unless YES=1), policy pack enforced
	./scripts/stack.sh up $(STACK) --policy-pack policy

# The policy pack (policy/) runs in its own virtualenv, named by policy/PulumiPolicy.yaml.
policy/venv/.installed: policy/requirements.txt
	python3 -m venv policy/venv
	policy/venv/bin/python -m pip install -q -r policy/requirements.txt
	touch $@

policy-venv: policy/venv/.installed ## the policy pack's virtualenv (policy/requirements.txt)

preview: venv policy-venv ## pulumi preview --diff with the policy pack (policy/) enforced
	./scripts/stack.sh preview $(STACK) --policy-pack policy

# A pull request's diff, locally (scripts/preview-diff.sh; the preview workflow runs the same):
# BASE is deployed to a throwaway stack <STACK>-diff on the current cluster, this checkout is
# previewed against it, and the comment the workflow would post is printed. Needs the pulumi CLI.
.PHONY: preview-diff
preview-diff: venv policy-venv ## deploy BASE=<git ref> to a throwaway stack, preview this checkout against it
	./scripts/preview-diff.sh "$(BASE)" $(STACK) --policy-pack policy
# The baseline snapshot is replaced; the fortio Job carries the baseline's digest and verify reads
# it on stdin, so both run again with it (components/verification.py).
reverify: venv policy-venv ## run the load and the verification again without a config change
	./scripts/stack.sh reverify $(STACK) --policy-pack policy

destroy: venv ## pulumi destroy: remove everything the stack created (asks unless YES=1; works with the cluster gone)
	./scripts/stack.sh destroy $(STACK)

bench: venv tools ## production server vs naive baseline under the same load
	PY=$(PY) ./scripts/bench.sh

redis-image: ## build the Redis image from Debian's redis-server (no registry); prints its name
	./scripts/redis-image.sh

# loadgen by hand against the deployed stack (loadgen/README.md); the namespace comes from the
# stack's outputs. `make drill LG_KILL=2`, `make verify-url` (needs the Service reachable,
# e.g. `minikube tunnel`).
LG_SEL ?= app.kubernetes.io/name=articles,app.kubernetes.io/instance=$(STACK)
LG_KILL ?= 1
.PHONY: drill node-drill top verify-url report-html rollout-check
drill: venv ## delete LG_KILL app pods under the stack and time the self-healing
	$(PY) -m loadgen drill --namespace "$$(pulumi stack output --stack $(STACK) namespace)" --selector "$(LG_SEL)" --kill $(LG_KILL) --timeout 120
# `make node-drill` loses a node under a steady load through the stack's `url` (NODE=auto: the
# non-control-plane node with the most app pods; NODE=selfheal-lb-node2 names one) with
# cluster/node.sh cut/restore, or FAULT_CMD/RESTORE_CMD ('minikube node stop {node}'); DRAIN=1
# drains it instead. Needs a cluster of several nodes (make cluster NODES=3).
NODE ?= auto
DRAIN ?=
FAULT_CMD ?=
RESTORE_CMD ?=
node-drill: venv ## lose (or DRAIN=1 drain) NODE=auto under load through the stack's url; time the self-healing, failures vs their bound
	@url="$$(pulumi stack output --stack $(STACK) url)"; \
	[ -n "$$url" ] || { echo "selfheal-lb: the stack's url output is empty: $$(pulumi stack output --stack $(STACK) externalIpNote)" >&2; exit 1; }; \
	$(PY) -m loadgen drill --namespace "$$(pulumi stack output --stack $(STACK) namespace)" --selector "$(LG_SEL)" --node "$(NODE)" --url "$${url}article1" --timeout 180 $(if $(DRAIN),--drain) $(if $(FAULT_CMD),--fault-cmd '$(FAULT_CMD)') $(if $(RESTORE_CMD),--restore-cmd '$(RESTORE_CMD)')
# `make rollout-check` waits (up to LG_ROLLOUT_TIMEOUT s) for the rollout you start in another
# terminal (`pulumi up` after a change) and lists every failed request; LG_RESTART=1 starts one
# itself (as `kubectl rollout restart`). Needs the Service reachable, as verify-url does.
LG_ROLLOUT_TIMEOUT ?= 600
LG_RESTART ?=
rollout-check: venv ## steady load of fresh connections through the Service during a rollout; every failure by time and reason
	@url="$$(pulumi stack output --stack $(STACK) url)"; \
	[ -n "$$url" ] || { echo "selfheal-lb: the stack's url output is empty: $$(pulumi stack output --stack $(STACK) externalIpNote)" >&2; exit 1; }; \
	$(PY) -m loadgen rollout-check --url "$${url}article1" --namespace "$$(pulumi stack output --stack $(STACK) namespace)" --timeout $(LG_ROLLOUT_TIMEOUT) $(if $(LG_RESTART),--restart)
top: venv ## per-pod CPU/memory of the app pods (metrics.k8s.io)
	$(PY) -m loadgen top --namespace "$$(pulumi stack output --stack $(STACK) namespace)" --selector "$(LG_SEL)"
report-html: venv ## draw the stack's loadDistribution as build/report.html (shares, band, CPU under load)
	@mkdir -p build
	pulumi stack output --stack $(STACK) loadDistribution --json | $(PY) -m loadgen html - --out build/report.html
verify-url: venv ## send 1000 requests to the stack's `url` output and judge the split by X-Served-By
	@url="$$(pulumi stack output --stack $(STACK) url)"; \
	[ -n "$$url" ] || { echo "selfheal-lb: the stack's url output is empty: $$(pulumi stack output --stack $(STACK) externalIpNote)" >&2; exit 1; }; \
	$(PY) -m loadgen verify --url "$${url}article1" --expect-pods "$$(pulumi stack output --stack $(STACK) appReplicas)"

# A real cluster on this Linux machine (cluster/): pinned binaries built once into
# ~/.cache/selfheal-lb, images built locally, context `selfheal-lb` in
# ~/.cache/selfheal-lb/cluster/kubeconfig. Root only. NODES=3: two more kubelets, each in a
# network namespace of its own (cluster/nodes.sh; cut one with cluster/node.sh). Without NODES
# a running cluster is left as it is, a new one has one node.
NODES ?=
cluster: venv ## start the local Kubernetes cluster, NODES=1..4 (metrics-server, load balancer, NetworkPolicy)
	./cluster/up.sh $(NODES)

cluster-down: ## stop the local cluster and remove its state (binaries and images stay cached)
	./cluster/down.sh

# UPGRADE_FROM=<commit>: instead, deploy that commit and upgrade it to this checkout (nothing may
# lose its identity: cluster/e2e/upgrade.py).
e2e: venv tools cluster ## the stack on the local cluster for real: deploy, verify, policies, drill, teardown
	$(PY) -m cluster.e2e --stack local $(if $(UPGRADE_FROM),--upgrade-from $(UPGRADE_FROM))

# docs/configuration.md's table is generated from Pulumi.yaml (tests/test_config_table.py fails
# when the committed one differs).
.PHONY: config-table test-unit
config-table: venv ## rewrite docs/configuration.md's config table from Pulumi.yaml
	$(PY) scripts/config_table.py

# The tests not marked slow: no root, network, cluster or tools (tests/unit_guard.py fails a
# unit test that starts a tool or leaves loopback, in every run).
test-unit: venv ## the pure-Python tests only: no root, network, cluster or `make tools`; under 2 min
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"
