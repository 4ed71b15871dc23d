"""The public surface: every name in ``__all__`` imports, and the version is set."""

from __future__ import annotations

import importlib.metadata

import jaxdqn


def test_every_public_name_imports():
    for name in jaxdqn.__all__:
        assert getattr(jaxdqn, name) is not None, name
    assert sorted(jaxdqn.__all__) == sorted(set(jaxdqn.__all__))


def test_version_matches_installed_metadata():
    assert jaxdqn.__version__ == importlib.metadata.version("jaxdqn")
