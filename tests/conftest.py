"""Shared test setup: offline litellm, paths to the shipped and shared data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Never let litellm fetch its price map: tests must not need the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
TAU2_DIR = SHARED / "traces" / "tau2"
POLICIES_DIR = REPO_ROOT / "policies"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tau2_dir() -> Path:
    if not TAU2_DIR.is_dir():
        pytest.fail(f"shared traces not found at {TAU2_DIR}: CI must provide ../shared beside the clone")
    return TAU2_DIR


@pytest.fixture
def tracer_and_spans() -> Iterator[tuple[object, InMemorySpanExporter]]:
    """A real OpenTelemetry SDK tracer (not the global one) and the spans it finished."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()
