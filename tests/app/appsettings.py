"""Settings for an app under test, from an environment like the Deployment's.

A module of its own, not imported from conftest: several test directories have a conftest.py
and `import conftest` would find whichever was imported first.
"""

from __future__ import annotations

from articles.config import Settings


def make_settings(**overrides: object) -> Settings:
    env = {"POD_NAME": "pod-under-test", "POD_IP": "10.0.0.7", "NODE_NAME": "node-a"}
    env.update({k: str(v) for k, v in overrides.items()})
    return Settings.from_env(env)
