"""ArticleImage: the app's container image, built from app/ or taken as is from config.

The tag is a content hash of the files the Docker build receives (app/ minus what
app/.dockerignore excludes), so an unchanged app/ never rebuilds or rolls the Deployment, and
a changed one always does. Never `latest`.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker
from pulumi_command import local

from components.settings import ImageSettings

TYPE = "selfheal-lb:image:ArticleImage"
TAG_LENGTH = 16  # hex digits of the sha256 content hash


@dataclass(frozen=True)
class ArticleImageArgs:
    settings: ImageSettings
    source_root: Path  # the project dir: settings.context_dir is relative to it
    registry_password: pulumi.Input[str] | None = None  # a secret Output (config get_secret)


def _dockerignore_rules(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, in file order (the last match wins)."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return []
    rules = []
    for line in ignore_file.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().strip("/")
        pattern = re.sub(r"/+", "/", pattern.removeprefix("./"))
        if not pattern:
            continue
        rules.append((negated, re.compile(_glob_to_regex(pattern))))
    return rules


def _glob_to_regex(pattern: str) -> str:
    """Docker's matching: Go filepath.Match per segment plus `**` for any number of segments.

    A pattern that matches a directory also matches everything below it.
    """
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[" and "]" in pattern[i + 1 :]:
            close = pattern.index("]", i + 1)
            body = pattern[i + 1 : close]
            negate = body.startswith(("!", "^"))
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(char))
            i += 1
    return "^" + "".join(out) + "(?:/.*)?$"


def build_files(context: Path) -> list[Path]:
    """The files `docker build` receives from `context`, honouring its .dockerignore.

    Dockerfile and .dockerignore are always sent, even when listed (as Docker does).
    """
    rules = _dockerignore_rules(context)
    files = []
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context).as_posix()
        excluded = False
        for negated, regex in rules:
            if regex.match(rel):
                excluded = not negated
        if not excluded or rel in ("Dockerfile", ".dockerignore"):
            files.append(path)
    return files


def content_hash(context: Path) -> str:
    """Deterministic hash of the build input: relative paths, executable bits and contents."""
    if not context.is_dir():
        raise FileNotFoundError(f"image build context {context} does not exist")
    digest = hashlib.sha256()
    for path in build_files(context):
        rel = path.relative_to(context).as_posix()
        executable = "x" if path.stat().st_mode & 0o111 else "-"
        data = path.read_bytes()
        digest.update(f"{rel}\0{executable}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:TAG_LENGTH]


class ArticleImage(pulumi.ComponentResource):
    """Builds app/ with docker.Image (pushing only when asked) or passes a prebuilt reference."""

    image_ref: pulumi.Output[str]
    image: docker.Image | None

    def __init__(
        self, name: str, args: ArticleImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        s = args.settings
        self.image = None
        self.load: local.Command | None = None
        if s.prebuilt_ref:
            self.image_ref = pulumi.Output.from_input(s.prebuilt_ref)
        else:
            context = args.source_root / s.context_dir
            tag = content_hash(context)
            registry = None
            if s.push:
                password = args.registry_password
                registry = docker.RegistryArgs(
                    server=s.registry_server,
                    username=s.registry_username or None,
                    password=pulumi.Output.secret(password) if password is not None else None,
                )
            self.image = docker.Image(
                name,
                image_name=f"{s.repository}:{tag}",
                build=docker.DockerBuildArgs(
                    # Relative to the project dir (the program's working directory), so the
                    # inputs are the same on every machine and previews show no spurious diff.
                    context=s.context_dir,
                    dockerfile=f"{s.context_dir}/Dockerfile",
                    args={"BASE_IMAGE": s.base_image} if s.base_image else None,
                ),
                skip_push=not s.push,
                registry=registry,
                opts=pulumi.ResourceOptions(parent=self),
            )
            # image_name carries the build as a dependency: the Deployment waits for it.
            self.image_ref = self.image.image_name
            if s.load_command:
                self.image_ref = self._load_into_nodes(name, s.load_command)
        self.register_outputs({"image_ref": self.image_ref})

    def _load_into_nodes(self, name: str, command: str) -> pulumi.Output[str]:
        """Runs the configured load command (kind load, minikube image load, …) with the image.

        Re-runs whenever the reference changes (a new content hash); the returned reference
        depends on the command, so the Deployment rolls only once the nodes have the image.
        """
        assert self.image is not None
        self.load = local.Command(
            f"{name}-load",
            create=self.image.image_name.apply(lambda ref: f"{command} {shlex.quote(ref)}"),
            triggers=[self.image.image_name],
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.all(self.image.image_name, self.load.stdout).apply(lambda v: v[0])
