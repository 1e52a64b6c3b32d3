"""Stand-in `pulumi` for the preview-diff orchestration tests. NOT the engine: it runs no
program and computes no diff. It records every call (directory, arguments, backend), keeps a
registry of stacks under $FAKE_PULUMI_STATE, remembers the config each stack was deployed with,
and answers `preview --json` by playing back the real recording that matches how the config it
is given differs from the deployed one (none, appReplicas, metricsServerEnabled; the recording
of the last was made with the key it replaced, metricsServerPresent: HPA created). So a flow that
deployed the wrong checkout, or previewed with the wrong config, gets the wrong recording.

Like the real CLI with the passphrase secrets provider, `stack select --create` writes an
encryptionsalt into the stack's config file when it has none, and a config whose salt differs
from the stack's is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import yaml

RECORDINGS = Path(__file__).resolve().parent / "recordings"
PLAYBACK = {
    frozenset(): "preview-no-change.json",
    frozenset({"selfheal-lb:appReplicas"}): "preview-one-field.json",
    frozenset({"selfheal-lb:metricsServerEnabled"}): "preview-one-resource-added.json",
}
SALT = "v1:ZmFrZS1zYWx0:v1:c3RhbmQtaW4=:cmVjb3JkZWQ="


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def fail(message: str, code: int = 255) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def read_config(path: Path) -> dict:
    if not path.exists():
        fail(f"no config file {path}")
    return yaml.safe_load(path.read_text()) or {}


def main(args: list[str]) -> None:
    state = Path(os.environ["FAKE_PULUMI_STATE"])
    with open(os.environ["CALLS"], "a") as log:
        log.write(json.dumps({
            "tool": "pulumi",
            "cwd": os.getcwd(),
            "args": args,
            "backend": os.environ.get("PULUMI_BACKEND_URL"),
            "passphrase": os.environ.get("PULUMI_CONFIG_PASSPHRASE"),
        }) + "\n")
    stacks = state / "stacks"
    stacks.mkdir(parents=True, exist_ok=True)

    if args[:2] == ["stack", "select"]:
        name = args[2] if args[2] != "--create" else args[3]
        if not (stacks / name).exists():
            if "--create" not in args:
                fail(f"no stack named '{name}' found")
            (stacks / name).mkdir()
            config_file = Path(f"Pulumi.{name}.yaml")
            doc = read_config(config_file)
            if "encryptionsalt" not in doc:
                with config_file.open("a") as f:
                    f.write(f"encryptionsalt: {SALT}\n")
            salt = read_config(config_file)["encryptionsalt"]
            (stacks / name / "salt").write_text(salt)
        return
    if args[:2] == ["stack", "rm"]:
        name = args[2]
        if not (stacks / name).exists():
            fail(f"no stack named '{name}' found")
        if (stacks / name / "deployed.yaml").exists() and "--force" not in args:
            fail(f"'{name}' still has resources; use --force")
        shutil.rmtree(stacks / name)
        return

    name = option(args, "--stack")
    if name is None or not (stacks / name).exists():
        fail(f"no stack named '{name}' found")
    config_path = Path(option(args, "--config-file") or f"Pulumi.{name}.yaml")
    if args[0] == "up":
        if os.environ.get("FAKE_PULUMI_UP_FAIL"):
            print("Updating (dev-diff):", file=sys.stderr)
            fail(os.environ["FAKE_PULUMI_UP_FAIL"], 1)
        shutil.copy(config_path, stacks / name / "deployed.yaml")
        (stacks / name / "deployed-from").write_text(os.getcwd())
        print("Resources:\n    + 16 created")
    elif args[0] == "destroy":
        (stacks / name / "deployed.yaml").unlink(missing_ok=True)
        print("Resources:\n    - 16 deleted")
    elif args[0] == "preview":
        if "--json" not in args:
            fail("the flow must ask for --json")
        given = read_config(config_path)
        if given.get("encryptionsalt") != (stacks / name / "salt").read_text():
            fail("incorrect passphrase: the config's encryptionsalt is not the stack's")
        deployed_file = stacks / name / "deployed.yaml"
        if not deployed_file.exists():
            fail(f"stack '{name}' has nothing deployed to preview against")
        deployed = read_config(deployed_file)["config"]
        changed = frozenset(
            k for k in set(deployed) | set(given["config"])
            if deployed.get(k) != given["config"].get(k)
        )
        if changed not in PLAYBACK:
            fail(f"the stand-in has no recording for a change of {sorted(changed)}", 1)
        sys.stdout.write((RECORDINGS / PLAYBACK[changed]).read_text())
    else:
        fail(f"the stand-in does not know 'pulumi {' '.join(args)}'")


if __name__ == "__main__":
    main(sys.argv[1:])
