"""Tool definitions rendered the way OpenAI is understood to show them to the model.

Providers do not publish how tool schemas are tokenized; the community
reconstruction (jtokkit's TikTokenUtils, also used by litellm's
``token_counter``) renders them as a TypeScript-like namespace. Counting that
text gives a far closer estimate than counting the JSON schema, which is
~50% wordier. Counts with tools stay labelled estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def render_tools(tools: Sequence[Any]) -> str:
    """The text whose tokens stand for ``tools`` (OpenAI ``tools`` or bare function specs)."""
    lines = ["namespace functions {", ""]
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        fn = tool.get("function")
        if not isinstance(fn, Mapping):  # Anthropic-style {name, description, input_schema} or bare
            fn = {
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("input_schema") or tool.get("parameters") or {},
            }
        lines.extend(_function(fn))
    lines.append("} // namespace functions")
    return "\n".join(lines)


def _function(fn: Mapping[str, Any]) -> list[str]:
    name = fn.get("name")
    if not name:
        return []
    out = [f"// {fn['description']}"] if fn.get("description") else []
    params = fn.get("parameters")
    if isinstance(params, Mapping) and params.get("properties"):
        out += [f"type {name} = (_: {{", _object(params, 0), "}) => any;", ""]
    else:
        out += [f"type {name} = () => any;", ""]
    return out


def _object(schema: Mapping[str, Any], indent: int) -> str:
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return ""
    required = schema.get("required") or ()
    lines = []
    for key, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        if prop.get("description"):
            lines.append(f"// {prop['description']}")
        lines.append(f"{key}{'' if key in required else '?'}: {_type(prop, indent)},")
    return "\n".join(" " * indent + line for line in lines)


def _type(prop: Mapping[str, Any], indent: int) -> str:
    kind = prop.get("type")
    if "enum" in prop and kind in ("string", "integer", "number", None):
        return " | ".join(f'"{v}"' for v in prop["enum"])
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        items = prop.get("items")
        return f"{_type(items if isinstance(items, Mapping) else {}, indent)}[]"
    if kind == "object":
        return "{\n" + _object(prop, indent + 2) + "\n}"
    return "any"
