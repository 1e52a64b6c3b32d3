"""The pull-request comment rendered from real `pulumi preview --json` recordings (no change,
one config field, one resource added): what a reviewer reads first, and what is folded."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from previewdiff.markdown import GITHUB_COMMENT_LIMIT, MARKER, Context, code, fenced, render
from previewdiff.plan import UNKNOWN, parse, parse_path

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).resolve().parent / "recordings"
CTX = Context(stack="dev", base="main (1a2b3c4)", head="i14 (5d6e7f8)")


def recording(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"preview-{name}.json").read_text())


def comment(doc: dict[str, Any] | str, ctx: Context = CTX) -> str:
    return render(parse(doc if isinstance(doc, str) else json.dumps(doc)), ctx)


def head_part(text: str) -> str:
    """What a reviewer sees without unfolding anything."""
    return text.split("<details>", 1)[0]


def bullets(text: str) -> list[str]:
    return [line for line in head_part(text).splitlines() if line.startswith("- ")]


def test_a_change_that_deploys_nothing_new_says_no_changes():
    text = comment(recording("no-change"))
    visible = head_part(text)
    assert "**No changes.** 16 resources unchanged." in visible
    assert bullets(text) == []
    assert "Field-by-field" not in text
    # The engine's plugin warnings are there, but folded.
    assert "using pulumi-resource-kubernetes" not in visible
    assert "using pulumi-resource-kubernetes from $PATH" in text


def test_a_replica_change_shows_exactly_that_field_on_the_deployment():
    text = comment(recording("one-field"))
    assert "**1 to update, 3 to replace**; 12 resources unchanged." in head_part(text)
    deployment = [b for b in bullets(text) if "`app-deployment`" in b]
    assert deployment == ["- **update** `app-deployment` (Deployment): `spec.replicas: 3 → 4`"]
    # The verification re-runs because of the same number, and the comment says which input.
    assert "- **replace** `verification-snapshot` (Command): `triggers[1]: 3 → 4`" in bullets(text)
    assert len(bullets(text)) == 4


def test_long_values_are_shown_where_they_differ():
    details = comment(recording("one-field")).split("<details>", 1)[1]
    line = next(x for x in details.splitlines() if x.strip().startswith("~ create:"))
    old, new = line.split(" => ")
    assert "--expect-pods 3 --alpha" in old and "--expect-pods 4 --alpha" in new
    assert old.split("create: ", 1)[1].startswith("…")  # cut before, where they differ


def test_values_only_known_after_apply_are_said_so_not_shown_as_the_engines_placeholder():
    text = comment(recording("one-field"))
    assert UNKNOWN in json.dumps(recording("one-field"))
    assert UNKNOWN not in text
    assert re.search(r"~ stdin: .* => \(known after apply\)", text)


def test_an_added_resource_is_listed_with_what_it_will_be():
    text = comment(recording("one-resource-added"))
    assert "**1 to create, 1 to update**; 15 resources unchanged." in head_part(text)
    assert bullets(text) == [
        "- **create** `app-hpa` (HorizontalPodAutoscaler)",
        "- **update** `app-deployment` (Deployment): `metadata.annotations removed`",
    ]
    details = text.split("<details>", 1)[1]
    assert "+ spec.minReplicas: 3" in details and "+ spec.maxReplicas: 10" in details
    assert '+ spec.scaleTargetRef.name: "articles"' in details
    assert '- metadata.annotations: {"pulumi.com/patchForce": "true"} => (none)' in details


@pytest.mark.parametrize("name", ["no-change", "one-field", "one-resource-added"])
def test_every_comment_is_marked_titled_summarised_first_and_folds_balance(name):
    text = comment(recording(name))
    lines = text.splitlines()
    assert lines[0] == MARKER
    assert lines[1] == "### Preview of stack `dev`: i14 (5d6e7f8) against main (1a2b3c4)"
    assert lines[3].startswith("**")  # the counts come before anything else
    assert text.count("<details>") == text.count("</details>") >= 1
    assert text.count("```") % 2 == 0


@pytest.mark.parametrize("name", ["no-change", "one-field", "one-resource-added"])
def test_listed_changes_agree_with_the_engines_own_counts(name):
    doc = recording(name)
    plan = parse(json.dumps(doc))
    changed = sum(n for op, n in doc["changeSummary"].items() if op != "same")
    assert len(plan.changes) == changed
    assert plan.unchanged == doc["changeSummary"]["same"]


def test_a_secret_value_is_never_printed():
    doc = recording("one-field")
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
              "plaintext": "4"}
    step = next(s for s in doc["steps"] if s["urn"].endswith("::app-deployment"))
    step["newState"]["inputs"]["spec"]["replicas"] = secret
    text = comment(doc)
    assert "`spec.replicas: 3 → [secret]`" in text
    assert "plaintext" not in text


def test_a_failed_preview_shows_its_errors_unfolded():
    doc = copy.deepcopy(recording("one-field"))
    doc["diagnostics"].append({
        "urn": doc["steps"][1]["urn"],
        "message": "error: [mandatory] selfheal-lb-policy v1 container-resources: no memory limit",
        "severity": "error",
    })
    text = comment(doc, Context("dev", "main (1)", "pr (2)", failed=True))
    visible = head_part(text)
    assert "**The preview failed**" in visible
    assert "app-deployment: error: [mandatory] selfheal-lb-policy" in visible
    assert "**1 error(s):**" in visible


def test_a_huge_plan_stays_under_githubs_comment_limit():
    doc = recording("one-field")
    template = next(s for s in doc["steps"] if s["op"] == "replace")
    doc["steps"] = [
        {**copy.deepcopy(template), "urn": template["urn"] + str(i)} for i in range(3000)
    ]
    doc["changeSummary"] = {"replace": 3000}
    text = comment(doc)
    assert len(text) <= GITHUB_COMMENT_LIMIT
    assert "**3000 to replace**" in text
    assert "more resources: see the job log" in text
    assert "- … and 2960 more (in the diff below)" in head_part(text)


def test_names_from_the_program_cannot_break_out_of_code():
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    block = fenced(["```", "<img src=x>"])
    assert block.startswith("````\n") and block.endswith("\n````")
    doc = recording("one-resource-added")
    step = next(s for s in doc["steps"] if s["op"] == "create")
    step["urn"] = step["urn"].rsplit("::", 1)[0] + "::evil` <img src=x onerror=alert(1)>"
    bullet = next(b for b in bullets(comment(doc)) if "create" in b)
    assert bullet == "- **create** ``evil` <img src=x onerror=alert(1)>`` (HorizontalPodAutoscaler)"


def test_property_paths_in_the_engines_syntax():
    assert parse_path("spec.replicas") == ["spec", "replicas"]
    assert parse_path("triggers[1]") == ["triggers", 1]
    assert parse_path('metadata.labels["app.kubernetes.io/name"].x') == [
        "metadata", "labels", "app.kubernetes.io/name", "x"]
    assert parse_path("spec.template.metadata.annotations.selfheal-lb/verification-run")[-1] == (
        "selfheal-lb/verification-run")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, "-m", "previewdiff", "--stack", "dev", "--base", "b", "--head", "h"]
    return subprocess.run(
        [*cli, *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )


def test_cli_reads_a_recording_and_prints_the_comment():
    proc = run_cli("--preview", str(RECORDINGS / "preview-no-change.json"))
    assert proc.returncode == 0, proc.stderr
    assert "**No changes.**" in proc.stdout


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [("", "produced no JSON"), ("warning: x\n{", "is not JSON"), ('{"steps": 3}', "no steps list")],
)
def test_cli_refuses_what_is_not_a_preview_in_one_line(stdin, needle):
    proc = run_cli(stdin=stdin)
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("previewdiff: ") and needle in line


def test_cli_when_pulumi_failed_before_any_json_still_writes_a_comment():
    proc = run_cli("--failed", stdin="")
    assert proc.returncode == 0
    assert proc.stdout.startswith(MARKER)
    assert "**The preview failed**" in proc.stdout


def test_a_failed_preview_shows_the_end_of_pulumis_log(tmp_path):
    # Policy violations never reach the JSON: the engine leaves them out of --json output.
    log = tmp_path / "preview.log"
    log.write_text("".join(f"line {i}\n" for i in range(30))
                   + "\x1b[31merror: preview failed\x1b[0m\n"
                   + "    [mandatory]  selfheal-lb-policy v1  resources-declared (articles)\n")
    proc = run_cli("--failed", "--log", str(log),
                   "--preview", str(RECORDINGS / "preview-no-change.json"))
    assert proc.returncode == 0, proc.stderr
    visible = head_part(proc.stdout)
    assert "error: preview failed\n    [mandatory]  selfheal-lb-policy" in visible
    assert "line 12" in visible and "line 11" not in visible  # the last 20 lines
    assert "\x1b" not in proc.stdout
    ok = run_cli("--log", str(log), "--preview", str(RECORDINGS / "preview-no-change.json"))
    assert "line 29" not in ok.stdout, "a preview that worked needs no log"
