"""The config schema and its reader: every key, type and default comes from Pulumi.yaml (the
one place they are written); the rules Pulumi's schema cannot express (ranges, choices, the
Kubernetes quantity and image-reference grammars, cross-field rules) are in the modules of this
package, one per concern. Every mistake is a ConfigError: one line naming the key, the value
given and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pulumi
import yaml


class ConfigError(pulumi.RunError, ValueError):
    """A stack config value is wrong. str() is the one line shown to the user.

    A RunError: should one escape the program, Pulumi's language host prints just its message.
    """


ConfigValue = str | int | bool | tuple[str, ...]

_INT = re.compile(r"^[+-]?\d+$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Quantities are checked against the grammar the API server accepts, not with the client's
# parse_quantity (it takes "1_000", "NaN" and "Infinity", and would load `kubernetes` here).
_CPU = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m)?$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
# Docker reference grammar (distribution/reference): optional registry host[:port], then
# lower-case path components separated by '/'.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(
    rf"^(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::\d+)?)/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

PULUMI_YAML = Path(__file__).resolve().parents[2] / "Pulumi.yaml"
KINDS = ("string", "integer", "boolean", "array")


def config_spec(project_file: Path = PULUMI_YAML) -> dict[str, tuple[str, ConfigValue]]:
    """key -> (kind, default), read from the project's config schema: Pulumi.yaml is the one
    place every key, type and default is written (the parsers below add the rules)."""
    declared = yaml.safe_load(project_file.read_text())["config"]
    spec: dict[str, tuple[str, ConfigValue]] = {}
    for key, decl in declared.items():
        kind, default = decl["type"], decl["default"]
        if kind not in KINDS:
            raise ValueError(f"Pulumi.yaml: config key {key} has an unknown type {kind!r}")
        spec[key] = (kind, tuple(default) if kind == "array" else default)
    return spec


CONFIG_SPEC: dict[str, tuple[str, ConfigValue]] = config_spec()
# A secret cannot carry a default in Pulumi.yaml, and a declared key without a default is
# required of every stack, so this one is read here but deliberately not declared there.
SECRET_KEYS = ("imageRegistryPassword", "stateStorePassword")
# Keys this project no longer has, with what replaces them (one line instead of "unknown key").
RETIRED_KEYS = {
    "metricsServerPresent": (
        "the stack now detects the cluster's metrics-server itself: remove this key "
        "(metricsServerEnabled auto uses the one that is there)"
    ),
}


class Reader:
    """Reads raw config strings for one project namespace and names the key in every error."""

    def __init__(self, config: pulumi.Config, project: str) -> None:
        self._config = config
        self._project = project

    def key(self, name: str) -> str:
        return f"{self._project}:{name}"

    def fail(self, name: str, value: object, allowed: str) -> NoReturn:
        shown = value if isinstance(value, str) else json.dumps(value)
        raise ConfigError(f"config '{self.key(name)}' is '{shown}': {allowed}")

    def raw(self, name: str) -> str | None:
        return self._config.get(name)

    def string(self, name: str, *, choices: tuple[str, ...] = ()) -> str:
        raw = self.raw(name)
        value = str(CONFIG_SPEC[name][1]) if raw is None else raw
        if choices and value not in choices:
            self.fail(name, value, f"must be one of {', '.join(choices)}")
        return value

    def integer(self, name: str, low: int, high: int, what: str = "") -> int:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, int)
        else:
            text = raw.strip()
            if not _INT.match(text):
                self.fail(name, raw, f"must be an integer from {low} to {high}{what}")
            value = int(text)
        if not low <= value <= high:
            self.fail(name, value, f"must be an integer from {low} to {high}{what}")
        return value

    def boolean(self, name: str) -> bool:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, bool)
            return value
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            self.fail(name, raw, "must be true or false")
        return lowered == "true"

    def strings(self, name: str) -> tuple[str, ...]:
        raw = self.raw(name)
        if raw is None:
            value = CONFIG_SPEC[name][1]
            assert isinstance(value, tuple)
            return value
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            self.fail(name, raw, 'must be a list of strings, e.g. ["0.0.0.0/0"]')
        return tuple(parsed)


def cpu_millis(text: str) -> float | None:
    m = _CPU.match(text)
    if not m:
        return None
    number = float(m.group(1))
    return number if m.group(3) else number * 1000


def memory_amount(text: str) -> float | None:
    m = _MEMORY.match(text)
    return float(m.group(1)) * _MEMORY_UNITS[m.group(3) or ""] if m else None


def memory_bytes(quantity: str) -> int:
    """A validated Kubernetes memory quantity in bytes (for Redis' maxmemory)."""
    amount = memory_amount(quantity)
    if amount is None:
        raise ValueError(f"not a memory quantity: {quantity}")
    return int(amount)


def check_image_ref(r: Reader, ref: str, key: str = "imageRef") -> None:
    """An image reference must pin the image: a tag other than latest, or a digest."""
    allowed = "must be <repository>:<tag> (tag not 'latest') or <repository>@sha256:<digest>"
    name, _, digest = ref.partition("@")
    repository, tag = name, ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = name.rsplit(":", 1)
    if not REPOSITORY.match(repository):
        r.fail(key, ref, allowed)
    if digest:
        if not _DIGEST.match(digest) or (tag and not _TAG.match(tag)):
            r.fail(key, ref, allowed)
    elif not tag or tag == "latest" or not _TAG.match(tag):
        r.fail(key, ref, allowed)


def reject_unknown_keys(r: Reader, present: Iterable[str], project: str) -> None:
    known = set(CONFIG_SPEC) | set(SECRET_KEYS)
    for full in sorted(present):
        namespace, _, name = full.partition(":")
        if namespace != project or name in known:
            continue
        if name in RETIRED_KEYS:
            raise ConfigError(f"config '{full}' is no longer used: {RETIRED_KEYS[name]}")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see Pulumi.yaml for the keys"
        raise ConfigError(f"config '{full}' is not a key of this project: {hint}")


def present_config_keys() -> list[str]:
    """The fully-qualified config keys the engine handed the program (to catch misspellings)."""
    from pulumi.runtime import config as runtime_config  # the SDK keeps no public accessor

    return list(runtime_config.CONFIG.get().keys())
