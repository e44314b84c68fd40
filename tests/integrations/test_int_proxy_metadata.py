"""Where the proxy hook takes run, user and team from: the caller's request, but identity from the key."""

from __future__ import annotations

from litellm.proxy._types import UserAPIKeyAuth

from governor.integrations.litellm_proxy import request_metadata


def test_identity_comes_from_the_key_and_cannot_be_overridden_by_the_request() -> None:
    key = UserAPIKeyAuth(user_id="alice", team_id="support", metadata={"governor": {"agent": "helpdesk"}})
    data = {
        "user": "customer-9",
        "metadata": {
            "requester_metadata": {"user": "mallory", "team": "other", "task": "classify", "run_id": "r-1", "tier": "free"},
            "headers": {"authorization": "Bearer secret"},
            "user_api_key_user_id": "alice",
        },
    }
    out = request_metadata(key, data)
    assert out == {
        "user": "alice", "team": "support", "agent": "helpdesk", "task": "classify", "run_id": "r-1",
        "tier": "free", "end_user": "customer-9",
    }


def test_run_id_falls_back_to_the_run_header_then_litellm_trace_id() -> None:
    key = UserAPIKeyAuth()
    by_header = {"metadata": {}, "litellm_trace_id": "trace-1",
                 "proxy_server_request": {"headers": {"X-Governor-Run-Id": "run-h"}}}
    assert request_metadata(key, by_header)["run_id"] == "run-h"
    assert request_metadata(key, {"metadata": {}, "litellm_trace_id": "trace-1"})["run_id"] == "trace-1"
    assert request_metadata(key, {"metadata": {}, "user": "end-7"})["user"] == "end-7"  # no key user: the request's


def test_a_coding_agent_session_is_the_run_and_the_key_is_the_developer() -> None:
    key = UserAPIKeyAuth(user_id="dev-ana", team_id="platform")
    claude = {"metadata": {}, "litellm_trace_id": "trace-1",
              "proxy_server_request": {"headers": {"X-Claude-Code-Session-Id": "4928c0db", "user-agent": "claude-cli/2.1.197"}}}
    assert request_metadata(key, claude) == {"run_id": "4928c0db", "agent": "claude-code", "user": "dev-ana",
                                             "team": "platform"}
    codex = {"metadata": {}, "proxy_server_request": {"headers": {
        "session-id": "01a23cbc", "thread-id": "01a23cbc", "originator": "codex_exec"}}}
    assert request_metadata(key, codex) == {"run_id": "01a23cbc", "agent": "codex", "user": "dev-ana",
                                            "team": "platform"}
    # an explicit run header wins over the session; the caller's own agent is kept
    both = {"metadata": {"requester_metadata": {"agent": "mine"}},
            "proxy_server_request": {"headers": {"x-governor-run-id": "r-9", "x-claude-code-session-id": "s"}}}
    assert request_metadata(key, both)["run_id"] == "r-9" and request_metadata(key, both)["agent"] == "mine"
