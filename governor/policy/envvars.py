"""``${VAR}`` and ``${VAR:-default}`` in ledger settings, so a secret stays in the environment.

A ledger ``url`` (a Redis password), ``path`` or ``key_prefix`` may name
environment variables. They are checked when the policy loads (an unset
variable without a default is an error at its line) and expanded only when the
ledger is opened, so the policy value, its revision and every log keep the
``${VAR}`` text, never the secret. ``$${`` is a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["ENV_FIELDS", "UnsetVariable", "expand", "problems"]

ENV_FIELDS = ("url", "path", "key_prefix")
"""The ledger settings that expand environment variables."""

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class UnsetVariable(LookupError):
    """A ``${VAR}`` with no default whose variable is not set (or a malformed ``${``)."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every ``${VAR}`` / ``${VAR:-default}`` replaced; :class:`UnsetVariable` otherwise."""
    if "$" not in text:
        return text
    source = os.environ if env is None else env

    def one(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:
            raise UnsetVariable("", "malformed '${': expected ${NAME} or ${NAME:-default}")
        value = source.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise UnsetVariable(
                    name, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                )
            return default
        return value

    return _REF.sub(one, text)


def problems(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why ``text`` cannot be expanded now (None when it can): what validate reports."""
    try:
        expand(text, env)
    except UnsetVariable as exc:
        return str(exc)
    return None
