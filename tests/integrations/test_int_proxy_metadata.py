"""Where the proxy hook takes run, user and team from: the caller's request, but identity from the key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from litellm.proxy._types import UserAPIKeyAuth

from governor.integrations.coding_agents import client_agent, refusal_status
from governor.integrations.litellm_proxy import request_metadata


def test_identity_comes_from_the_key_and_cannot_be_overridden_by_the_request() -> None:
    key = UserAPIKeyAuth(user_id="alice", team_id="support", metadata={"governor": {"agent": "helpdesk"}})
    data = {
        "user": "customer-9",
        "metadata": {
            "requester_metadata": {
                "user": "mallory",
                "team": "other",
                "task": "classify",
                "run_id": "r-1",
                "tier": "free",
            },
            "headers": {"authorization": "Bearer secret"},
            "user_api_key_user_id": "alice",
        },
    }
    out = request_metadata(key, data)
    assert out == {
        "user": "alice",
        "team": "support",
        "agent": "helpdesk",
        "task": "classify",
        "run_id": "r-1",
        "tier": "free",
        "end_user": "customer-9",
    }


def test_run_id_falls_back_to_the_run_header_then_litellm_trace_id() -> None:
    key = UserAPIKeyAuth()
    by_header = {
        "metadata": {},
        "litellm_trace_id": "trace-1",
        "proxy_server_request": {"headers": {"X-Governor-Run-Id": "run-h"}},
    }
    assert request_metadata(key, by_header)["run_id"] == "run-h"
    assert request_metadata(key, {"metadata": {}, "litellm_trace_id": "trace-1"})["run_id"] == "trace-1"
    assert "user" not in request_metadata(
        key, {"metadata": {}, "user": "end-7"}
    )  # no key user: unset, not the request's


def test_a_key_without_a_team_cannot_charge_a_team_named_in_the_request() -> None:
    """The finding: a virtual key with no team drained another team's budget by naming it in metadata.team."""
    key = UserAPIKeyAuth(user_id="alice")
    data = {"user": "bob", "metadata": {"team": "victim", "user": "carol", "governor": {"team": "victim"}, "task": "t"}}
    out = request_metadata(key, data)
    assert out == {"user": "alice", "task": "t", "end_user": "bob"}


def test_a_trusted_source_named_by_the_policy_supplies_identity_only_where_the_key_has_none() -> None:
    trusted = {"team": "header:X-Gateway-Team", "user": "body:user"}
    data = {
        "user": "end-7",
        "metadata": {"team": "mallory"},
        "proxy_server_request": {"headers": {"x-gateway-team": "payments"}},
    }
    assert request_metadata(UserAPIKeyAuth(), data, trusted) == {
        "user": "end-7",
        "team": "payments",
        "end_user": "end-7",
    }
    keyed = UserAPIKeyAuth(user_id="alice", team_id="support")
    assert request_metadata(keyed, data, trusted)["team"] == "support"  # the key always wins
    by_meta = request_metadata(UserAPIKeyAuth(), data, {"team": "metadata:team"})
    assert by_meta["team"] == "mallory"  # the deployment said this metadata key is set by its gateway


def test_a_coding_agent_session_is_the_run_and_the_key_is_the_developer() -> None:
    key = UserAPIKeyAuth(user_id="dev-ana", team_id="platform")
    claude = {
        "metadata": {},
        "litellm_trace_id": "trace-1",
        "proxy_server_request": {
            "headers": {"X-Claude-Code-Session-Id": "4928c0db", "user-agent": "claude-cli/2.1.197"}
        },
    }
    assert request_metadata(key, claude) == {
        "run_id": "4928c0db",
        "agent": "claude-code",
        "user": "dev-ana",
        "team": "platform",
    }
    codex = {
        "metadata": {},
        "proxy_server_request": {
            "headers": {"session-id": "01a23cbc", "thread-id": "01a23cbc", "originator": "codex_exec"}
        },
    }
    assert request_metadata(key, codex) == {
        "run_id": "01a23cbc",
        "agent": "codex",
        "user": "dev-ana",
        "team": "platform",
    }
    # an explicit run header wins over the session; the caller's own agent is kept
    both = {
        "metadata": {"requester_metadata": {"agent": "mine"}},
        "proxy_server_request": {"headers": {"x-governor-run-id": "r-9", "x-claude-code-session-id": "s"}},
    }
    assert request_metadata(key, both)["run_id"] == "r-9" and request_metadata(key, both)["agent"] == "mine"


def test_the_client_a_refusal_is_worded_for_comes_from_its_headers() -> None:
    assert client_agent({"x-claude-code-session-id": "s", "user-agent": "claude-cli/2.1.197"}) == "claude-code"
    assert client_agent({"originator": "codex_exec", "session-id": "t"}) == "codex"
    assert client_agent({"user-agent": "codex_cli_rs/0.171.0 (Debian 12.0.0; x86_64)"}) == "codex"
    assert client_agent({"user-agent": "OpenAI/Python 1.99.0"}) is None
    # Codex gets the one status it shows the body of without retrying; every other client keeps the reason's
    assert [refusal_status(s, "codex") for s in (429, 403, 503, 400)] == [400, 400, 400, 400]
    assert [refusal_status(s, a) for s in (429, 403) for a in ("claude-code", None)] == [429, 429, 403, 403]


@given(
    st.dictionaries(
        st.sampled_from(["originator", "user-agent", "x-claude-code-session-id", "session-id", "x-other"]),
        st.one_of(st.text(max_size=30), st.integers(), st.none()),
    ),
    st.sampled_from([400, 403, 429, 503]),
)
def test_any_headers_name_one_client_at_most_and_only_codex_changes_the_status(
    headers: dict[str, object], status: int
) -> None:
    agent = client_agent(headers)
    assert agent in ("claude-code", "codex", None)
    assert refusal_status(status, agent) == (400 if agent == "codex" else status)
