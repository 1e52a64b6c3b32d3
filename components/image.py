"""ArticleImage: the app's container image, built from app/ or taken as is from config.

The tag is a content hash of the files the Docker build receives (app/ minus what
app/.dockerignore excludes), so an unchanged app/ never rebuilds or rolls the Deployment, and
a changed one always does. Never `latest`.
"""

from __future__ import annotations

import hashlib
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


def build_files(context: Path) -> list[Path]:
    """The files `docker build` receives from `context`, honouring its .dockerignore with
    Docker's own matcher (the Docker SDK's port of the CLI's pattern rules). Not pathspec: its
    .gitignore rules differ (with app/'s `*` + `!articles/` it would drop articles/*.py).

    Dockerfile and .dockerignore are always sent, even when listed (as the Docker CLI does).
    """
    from docker.utils.build import exclude_paths

    ignore_file = context / ".dockerignore"
    patterns: list[str] = []
    if ignore_file.is_file():
        # Read as the SDK's own build() reads it: stripped lines, no blanks or comments.
        lines = (line.strip() for line in ignore_file.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    kept = exclude_paths(str(context), [*patterns, "!.dockerignore"], dockerfile="Dockerfile")
    return sorted(context / rel for rel in kept if (context / rel).is_file())


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
