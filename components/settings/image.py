"""The article image: built from app/ (and loaded or pushed) or a pinned prebuilt reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from components.settings.schema import REPOSITORY, Reader, check_image_ref

PullPolicy = Literal["IfNotPresent", "Never", "Always"]


@dataclass(frozen=True)
class ImageSettings:
    prebuilt_ref: str  # "" = build app/ ; otherwise used as is (must be pinned)
    repository: str  # e.g. "selfheal-lb/articles" or "ghcr.io/me/articles"
    push: bool  # False for local clusters (minikube docker-env, kind load)
    registry_server: str
    registry_username: str
    registry_password_set: bool  # the secret itself stays a pulumi secret Output
    pull_policy: PullPolicy
    context_dir: str  # build context as handed to Docker: relative to the project dir ("app")
    base_image: str  # "" = the Dockerfile's default base; a mirror or locally built base otherwise
    load_command: str  # "" = none; else run with the built image's reference appended


def parse_image(r: Reader, app_dir: Path, password_set: bool) -> ImageSettings:
    prebuilt = r.string("imageRef").strip()
    repository = r.string("imageRepository").strip()
    push = r.boolean("imagePush")
    server = r.string("imageRegistryServer").strip()
    username = r.string("imageRegistryUsername").strip()
    pull_policy = r.string("imagePullPolicy", choices=("IfNotPresent", "Never", "Always"))
    base = r.string("imageBase").strip()
    load_command = r.string("imageLoadCommand").strip()
    if prebuilt and (base or load_command):
        key = "imageBase" if base else "imageLoadCommand"
        r.fail(key, base or load_command, "must be empty when imageRef is set (nothing is built)")
    if base:
        check_image_ref(r, base, "imageBase")
    if prebuilt:
        check_image_ref(r, prebuilt)
        if push:
            r.fail("imagePush", True, "must be false when imageRef is set (nothing is built)")
    else:
        if not repository:
            r.fail(
                "imageRepository", repository, "must name a repository, e.g. selfheal-lb/articles"
            )
        if not REPOSITORY.match(repository):
            r.fail(
                "imageRepository",
                repository,
                "must be a lower-case repository name without a tag, e.g. ghcr.io/me/articles",
            )
        if not push and pull_policy == "Always":
            r.fail(
                "imagePullPolicy",
                pull_policy,
                "must be IfNotPresent or Never when imagePush is false (the image is only local)",
            )
    if push:
        if not server:
            r.fail(
                "imageRegistryServer", server, "must name the registry host when imagePush is true"
            )
        if bool(username) != password_set:
            r.fail(
                "imageRegistryUsername",
                username,
                "must be set together with the secret imageRegistryPassword (both or neither)",
            )
    return ImageSettings(
        prebuilt_ref=prebuilt,
        repository=repository,
        push=push,
        registry_server=server,
        registry_username=username,
        registry_password_set=password_set,
        pull_policy=pull_policy,  # type: ignore[arg-type]
        context_dir=str(app_dir),
        base_image=base,
        load_command=load_command,
    )
