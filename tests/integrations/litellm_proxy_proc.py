"""Start a real ``litellm`` proxy process on 127.0.0.1 for the integration tests and benchmark.

The proxy runs offline: deployments answer with ``mock_response``, the price
map is the bundled one, there is no database. ``PROBE_SOURCE`` is a second
callback that writes what the proxy actually sent to the model (model, message
count, max_tokens) to a JSONL file, so tests can see reroutes and trims from
the outside.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

MASTER_KEY = "sk-governor-test"

PROBE_SOURCE = '''
import json, os
from litellm.integrations.custom_logger import CustomLogger


class Probe(CustomLogger):
    """Writes one line per successful model call: what the proxy really sent."""

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        params = kwargs.get("optional_params") or {}
        line = {
            "model": kwargs.get("model"),
            "messages": len(kwargs.get("messages") or []),
            "max_tokens": params.get("max_tokens", params.get("max_completion_tokens")),
        }
        with open(os.environ["GOVERNOR_TEST_PROBE"], "a") as fh:
            fh.write(json.dumps(line) + "\\n")


probe_instance = Probe()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def litellm_cli() -> str:
    path = Path(sys.executable).parent / "litellm"
    if not path.exists():
        raise RuntimeError(f"litellm CLI not found beside {sys.executable}: install the 'proxy' extra")
    return str(path)


def write_config(directory: Path, *, governed: bool, probe: bool = True) -> Path:
    """config.yaml with mock deployments (gpt-4o, gpt-4o-mini; gpt-4.1 always fails) and the callbacks."""
    callbacks = []
    if governed:
        callbacks.append("governor.integrations.litellm_proxy.proxy_handler_instance")
    if probe:
        (directory / "governor_probe.py").write_text(PROBE_SOURCE)
        callbacks.append("governor_probe.probe_instance")
    lines = [
        "model_list:",
        "  - model_name: gpt-4o",
        "    litellm_params: {model: openai/gpt-4o, api_key: sk-fake, mock_response: 'strong model answer'}",
        "  - model_name: gpt-4o-mini",
        "    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-fake, mock_response: 'cheap model answer'}",
        "  - model_name: gpt-4.1",  # an upstream that always fails (not retried by litellm)
        "    litellm_params: {model: openai/gpt-4.1, api_key: sk-fake, mock_response: litellm.ContextWindowExceededError}",
        "litellm_settings:",
        "  telemetry: false",
    ]
    if callbacks:
        lines.append(f"  callbacks: [{', '.join(callbacks)}]")
    path = directory / ("config-governed.yaml" if governed else "config-plain.yaml")
    path.write_text("\n".join(lines) + "\n")
    return path


UPSTREAM_MODELS = (
    # (model name at the proxy, litellm model, api_base suffix): every API shape the governor checks
    ("gpt-4o", "openai/gpt-4o", "/v1"),
    ("gpt-4o-mini", "openai/gpt-4o-mini", "/v1"),
    ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", ""),
    ("gpt-3.5-turbo-instruct", "text-completion-openai/gpt-3.5-turbo-instruct", "/v1"),
    ("text-embedding-3-small", "openai/text-embedding-3-small", "/v1"),
)


def write_upstream_config(directory: Path, upstream_url: str, *, governed: bool, name: str = "config-upstream") -> Path:
    """config.yaml whose deployments answer from the scripted upstream at ``upstream_url`` (tests/support)."""
    lines = ["model_list:"]
    for model_name, model, suffix in UPSTREAM_MODELS:
        lines += [
            f"  - model_name: {model_name}",
            f"    litellm_params: {{model: {model}, api_key: sk-fake, api_base: '{upstream_url}{suffix}'}}",
        ]
    lines += ["litellm_settings:", "  telemetry: false"]
    if governed:
        lines.append("  callbacks: [governor.integrations.litellm_proxy.proxy_handler_instance]")
    path = directory / f"{name}{'-governed' if governed else ''}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class ProxyProcess:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def proxy_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "OPENAI_", "GOVERNOR_"))}
    env.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start_proxy(config: Path, env: dict[str, str], log_path: Path, *, timeout: float = 240.0) -> ProxyProcess:
    """Start the proxy and wait until it answers; raise with its output if it dies or hangs."""
    port = free_port()
    cmd: Sequence[str] = [litellm_cli(), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    fh = open(log_path, "wb")
    proc = subprocess.Popen(cmd, env=proxy_env(env), stdout=fh, stderr=subprocess.STDOUT, cwd=str(config.parent))
    fh.close()
    proxy = ProxyProcess(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm proxy exited with {proc.returncode}:\n{proxy.output()[-4000:]}")
        try:
            if httpx.get(proxy.base_url + "/health/liveliness", timeout=1.0).status_code == 200:
                return proxy
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proxy.stop()
    raise RuntimeError(f"litellm proxy did not answer within {timeout}s:\n{proxy.output()[-4000:]}")


def wait_exit(config: Path, env: dict[str, str], log_path: Path, *, timeout: float = 240.0) -> tuple[int | None, str]:
    """Start the proxy expecting it to fail; return (exit code or None if still up, output)."""
    port = free_port()
    cmd = [litellm_cli(), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(cmd, env=proxy_env(env), stdout=fh, stderr=subprocess.STDOUT, cwd=str(config.parent))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    code = proc.poll()
    if code is None:
        proc.terminate()
        proc.wait(timeout=15)
    return code, log_path.read_text(errors="replace")
