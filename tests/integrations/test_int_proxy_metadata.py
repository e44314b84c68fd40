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
