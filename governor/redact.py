"""Scrubbing secrets out of text the governor writes: provider error messages, store errors.

A provider's error can echo the API key it was given ("Incorrect API key provided:
sk-proj-..."), a store's error can carry its URL's password. Text written to the
decision log, a trace or the Python log passes :func:`scrub` first; what looks like
a credential is replaced by ``[redacted]``, keeping a short prefix so the kind of key
stays recognisable.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "scrub"]

REDACTED = "[redacted]"

_PATTERNS = re.compile(
    r"(?P<keep>\b(?:sk|pk|rk)-(?:ant-|proj-|live-|test-)?)[A-Za-z0-9_\-]{12,}"  # OpenAI, Anthropic, Stripe-style
    r"|(?P<keep2>\bAIza)[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?P<keep3>\b(?:AKIA|ASIA))[0-9A-Z]{12,}"  # AWS access key ids
    r"|(?P<keep4>\b(?:ghp|gho|ghs|ghu|github_pat|xox[abprs]|glpat|hf))[_-][A-Za-z0-9_\-]{12,}"  # GitHub, Slack, ...
    r"|(?P<keep5>\b[Bb]earer\s+)[A-Za-z0-9._~+/\-]{8,}=*"  # Authorization: Bearer <token>
    r"|(?P<keep6>(?:api[_-]?key|x-api-key|access[_-]?token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]{6,}"
    r"|(?P<keep7>://[^/\s:@]*:)[^@\s/]+(?=@)",  # credentials in a URL: scheme://user:password@host
    re.IGNORECASE,
)


def _replace(m: re.Match[str]) -> str:
    keep = next((g for g in m.groups() if g is not None), "")
    return f"{keep}{REDACTED}"


def scrub(text: str) -> str:
    """``text`` with every key-like string replaced by ``[redacted]`` (its recognisable prefix kept)."""
    return _PATTERNS.sub(_replace, text)
