"""ArticleImage: content-hash tag of what Docker receives, local build vs push, prebuilt refs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from stack_fixtures import ROOT

from components import offline
from components.image import TAG_LENGTH, build_files, content_hash

IMAGE = "docker:index/image:Image"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "articles" / "__pycache__").mkdir(parents=True)
    (app / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (app / "articles" / "__init__.py").write_text("x = 1\n")
    (app / "articles" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (app / "notes.md").write_text("draft\n")
    (app / "keep.md").write_text("kept\n")
    (app / ".dockerignore").write_text("**/__pycache__\n*.md\n!keep.md\n# comment\n.dockerignore\n")
    return app


def test_hash_covers_exactly_what_the_build_receives(context: Path):
    names = [p.relative_to(context).as_posix() for p in build_files(context)]
    assert names == [".dockerignore", "Dockerfile", "articles/__init__.py", "keep.md"]


def test_exclude_all_then_reinclude_a_directory_keeps_what_is_below_it(tmp_path: Path):
    """app/.dockerignore's own shape, where Docker's rules and .gitignore's differ: `*` matches
    top-level names only, so `!articles/` brings back everything under articles/."""
    app = tmp_path / "app"
    (app / "articles" / "templates").mkdir(parents=True)
    (app / "articles" / "templates" / "base.html").write_text("<html>\n")
    (app / "articles" / "views.py").write_text("v = 1\n")
    (app / "tests").mkdir()
    (app / "tests" / "test_x.py").write_text("t = 1\n")
    (app / "Dockerfile").write_text("FROM scratch\n")
    (app / "requirements.txt").write_text("flask==3.1.3\n")
    (app / ".dockerignore").write_text("*\n!requirements.txt\n!articles/\n")
    names = [p.relative_to(app).as_posix() for p in build_files(app)]
    assert names == [
        ".dockerignore",
        "Dockerfile",
        "articles/templates/base.html",
        "articles/views.py",
        "requirements.txt",
    ]


def test_hash_is_deterministic_and_changes_only_with_the_build_input(context: Path):
    first = content_hash(context)
    assert len(first) == TAG_LENGTH and first == content_hash(context)
    (context / "notes.md").write_text("edited, but ignored\n")
    (context / "articles" / "__pycache__" / "y.pyc").write_bytes(b"\1")
    assert content_hash(context) == first
    (context / "articles" / "__init__.py").write_text("x = 2\n")
    second = content_hash(context)
    assert second != first
    (context / "articles" / "__init__.py").chmod(0o755)
    assert content_hash(context) != second


def test_hash_does_not_depend_on_where_the_checkout_lives(context: Path, tmp_path: Path):
    moved = tmp_path / "elsewhere" / "app"
    moved.parent.mkdir()
    context.rename(moved)
    assert content_hash(moved) == content_hash(moved)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in build_files(moved):
        target = copy / path.relative_to(moved)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert content_hash(copy) == content_hash(moved)


def _program(settings: str, password: str = "None") -> str:
    return textwrap.dedent(
        f"""
        from pathlib import Path
        import pulumi
        from components.image import ArticleImage, ArticleImageArgs
        from components.settings import ImageSettings
        s = ImageSettings(**{settings})
        password = {password}
        image = ArticleImage("image", ArticleImageArgs(s, Path({str(ROOT)!r}), password))
        pulumi.export("image_ref", image.image_ref)
        """
    )


LOCAL = dict(
    prebuilt_ref="",
    repository="selfheal-lb/articles",
    push=False,
    registry_server="",
    registry_username="",
    registry_password_set=False,
    pull_policy="IfNotPresent",
    context_dir="app",
    base_image="",
    load_command="",
)


def test_local_build_is_tagged_with_the_hash_and_not_pushed(run_snippet):
    run = run_snippet(_program(repr(LOCAL)))
    image = run.one(IMAGE)
    tag = content_hash(ROOT / "app")
    assert image.inputs["imageName"] == f"selfheal-lb/articles:{tag}"
    assert image.inputs["skipPush"] is True
    assert "registry" not in image.inputs
    # Relative paths only: the same inputs on every machine, so previews show no diff.
    assert image.inputs["build"] == {"context": "app", "dockerfile": "app/Dockerfile"}
    assert run.outputs["image_ref"] == f"selfheal-lb/articles:{tag}"
    assert ":latest" not in run.outputs["image_ref"]
    component = run.one("selfheal-lb:image:ArticleImage")
    assert image.parent_urn == component.urn


def test_push_sends_registry_credentials_with_the_password_as_a_secret(run_snippet):
    pushed = {
        **LOCAL,
        "repository": "ghcr.io/me/articles",
        "push": True,
        "registry_server": "ghcr.io",
        "registry_username": "me",
        "registry_password_set": True,
    }
    run = run_snippet(_program(repr(pushed), password='pulumi.Output.secret("s3cret")'))
    image = run.one(IMAGE)
    assert image.inputs["skipPush"] is False
    is_secret, registry = offline.secret_value(image.inputs["registry"])
    assert is_secret, "the registry block (with the password) must reach the provider as a secret"
    assert registry == {"server": "ghcr.io", "username": "me", "password": "s3cret"}
    assert "s3cret" not in repr(run.outputs)


def test_base_image_is_handed_to_the_build(run_snippet):
    base = "mirror.example/python:3.11.14-slim-bookworm"
    run = run_snippet(_program(repr({**LOCAL, "base_image": base})))
    assert run.one(IMAGE).inputs["build"]["args"] == {"BASE_IMAGE": base}


def test_load_command_gets_the_image_and_gates_the_reference(run_snippet):
    run = run_snippet(_program(repr({**LOCAL, "load_command": "kind load docker-image --name x"})))
    tag = content_hash(ROOT / "app")
    load = run.one("command:local:Command")
    assert load.inputs["create"] == f"kind load docker-image --name x selfheal-lb/articles:{tag}"
    assert load.inputs["triggers"] == [f"selfheal-lb/articles:{tag}"]
    assert load.parent_urn == run.one("selfheal-lb:image:ArticleImage").urn
    assert run.outputs["image_ref"] == f"selfheal-lb/articles:{tag}"


def test_no_load_command_runs_nothing(run_snippet):
    assert run_snippet(_program(repr(LOCAL))).of_type("command:local:Command") == []


def test_prebuilt_reference_builds_nothing(run_snippet):
    ref = "ghcr.io/me/articles:v1.2.3"
    run = run_snippet(_program(repr({**LOCAL, "prebuilt_ref": ref})))
    assert run.of_type(IMAGE) == []
    assert run.outputs["image_ref"] == ref
