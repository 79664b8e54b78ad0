"""Suite-wide set-up. The fast default runs on pytest-xdist workers (``-n auto`` in pytest.ini):
each worker has its own test database already (pytest-django suffixes it), and here its own Redis key
prefix, so two workers on one Redis never receive each other's group messages."""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    from django.conf import settings

    for layer in settings.CHANNEL_LAYERS.values():
        cfg = layer.get("CONFIG")
        if isinstance(cfg, dict) and "prefix" in cfg:
            cfg["prefix"] = f"{cfg['prefix']}-{worker}"
