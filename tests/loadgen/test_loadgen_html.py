"""`verify --html FILE` and `python -m loadgen html`: the page rendered by headless Chromium
(Debian's chromium, installed by scripts/install-tools.sh) and checked by its pixels: each
pod's bar as long as its share, red outside the accepted band and blue inside, the band drawn,
and CPU under load beside idle. The report comes from a real `python -m loadgen verify` run
(fake API, real fortio output as the Job's log), and from the real cluster's recorded output."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from fake_kube import FakeKube, Pod
from lg_procs import run_cli

NS = "selfheal-lb-dev"
APP_LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"
FIXTURES = Path(__file__).with_name("fixtures")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BLUE, RED, BAND = (0x2F, 0x6F, 0xB3), (0xC0, 0x39, 0x2B), (0xCD, 0xE8, 0xCF)
ORANGE, PURPLE = (0xE6, 0x7E, 0x22), (0x8E, 0x44, 0xAD)

pytestmark = [
    pytest.mark.slow,  # runs Chromium
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make tools)"),
]


def screenshot(page: Path, tmp_path: Path) -> Path:
    shot = tmp_path / "page.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1000,1000", "--hide-scrollbars",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists(), proc.stderr[-2000:]
    return shot


def widest_run(png: Path, colour: tuple[int, int, int]) -> list[int]:
    """Per screen row that holds the colour, how many pixels of it (bar lengths), distinct."""
    from PIL import Image

    img = Image.open(png).convert("RGB")
    width, height = img.size
    px = img.load()
    lengths = []
    for y in range(height):
        n = sum(
            1
            for x in range(width)
            if all(abs(a - b) <= 3 for a, b in zip(px[x, y], colour, strict=True))
        )
        if n:
            lengths.append(n)
    return sorted(set(lengths))


def metrics(pod: str, served: int) -> str:
    return (
        "# TYPE articles_http_requests_total counter\n"
        f'articles_http_requests_total{{method="GET",pod="{pod}",route="/article1",'
        f'status="200"}} {served}.0\n'
    )


def test_verify_html_draws_shares_band_and_cpu(fake: FakeKube, kubeconfig: str, tmp_path: Path):
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 3)
    env = {"KUBECONFIG": kubeconfig}
    for name in names:
        fake.pods[name].cpu = "3m"
    base = run_cli(["snapshot", "-n", NS, "-l", SEL, "--expect-ready", "3"], env=env)
    assert base.returncode == 0, base.stderr
    for name, served, cpu in zip(names, (400, 300, 300), ("240m", "180m", "180m"), strict=True):
        fake.pods[name].metrics_text = metrics(name, served)
        fake.pods[name].cpu = cpu
    log = (FIXTURES / "fortio-1.68.2-no-keepalive.log").read_text()
    fake.add_pod(Pod("loadgen-0", {"job": "lg"}, log=log, finish_after=0.0))
    page = tmp_path / "report.html"
    proc = run_cli(
        ["verify", "--in-cluster", "-n", NS, "-l", SEL, "--loadgen-selector", "job=lg",
         "--baseline", "-", "--no-keepalive", "--expect-pods", "3", "--json", "--timeout", "20",
         "--html", str(page)],
        stdin=base.stdout, env=env,
    )  # fmt: skip
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "imbalanced" and proc.returncode == 1
    shot = screenshot(page, tmp_path)
    red, blue = widest_run(shot, RED), widest_run(shot, BLUE)
    assert red and blue, "the pod outside the band is red, the two inside blue"
    assert abs(max(red) / max(blue) - 400 / 300) < 0.03, (red, blue)
    assert widest_run(shot, BAND), "the accepted band is not drawn"
    # CPU under load (orange) beside idle (purple), one scale: 240m, 180m and 3m.
    orange, purple = widest_run(shot, ORANGE), widest_run(shot, PURPLE)
    assert orange == [180, 240], orange
    assert purple == [3], purple


def test_the_stacks_recorded_report_renders(tmp_path: Path):
    """`make report-html`'s step: the stack's loadDistribution (recorded on a real cluster)."""
    # `pulumi stack output --json` of the stack at f0d1308 on a real Kubernetes 1.35 cluster.
    recorded = FIXTURES / "real-cluster-stack-outputs-dev-defaults.json"
    report = json.loads(recorded.read_text())["loadDistribution"]
    page = tmp_path / "stack.html"
    proc = run_cli(["html", "-", "--out", str(page)], stdin=json.dumps(report))
    assert proc.returncode == 0, proc.stderr
    shot = screenshot(page, tmp_path)
    blue = widest_run(shot, BLUE)
    shares = sorted(p["share"] for p in report["pods"])
    assert abs(max(blue) / min(b for b in blue if b > 0.8 * max(blue) * shares[0] / shares[-1])
               - shares[-1] / shares[0]) < 0.03, blue  # fmt: skip
    assert not widest_run(shot, RED)
