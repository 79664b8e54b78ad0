"""A small, strict JSON-schema subset: what tool parameters and extraction fields may use.

Why not the full spec: the schema goes to an LLM (OpenAI/Groq function definitions and structured
output), whose providers accept a subset anyway, and we validate the model's arguments against it
before any HTTP request leaves. Unknown keywords are refused when saved, so a typo
(``"requried"``) is an error in the admin, not a silently ignored rule during a call.
"""

from __future__ import annotations

from typing import Any

from aioptions.inputs import InputError

TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")
_KEYWORDS = {"type", "description", "enum", "properties", "required", "items", "additionalProperties",
             "minimum", "maximum", "minLength", "maxLength", "format", "title", "default"}
MAX_DEPTH = 5
MAX_PROPERTIES = 50


def check_schema(schema: Any, field: str = "parameters", *, depth: int = 0) -> dict:
    """Return ``schema`` if it is a valid schema of our subset, else raise InputError naming the spot."""
    if not isinstance(schema, dict):
        raise InputError(f"{field} must be a JSON object", field=field)
    if depth == 0 and schema.get("type") != "object":
        raise InputError(f'{field}: the top level must be {{"type": "object", ...}}', field=field)
    if depth > MAX_DEPTH:
        raise InputError(f"{field}: nested deeper than {MAX_DEPTH} levels", field=field)
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise InputError(f"{field}: unsupported keyword {sorted(unknown)[0]!r}", field=field)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if not types or any(t not in TYPES for t in types):
        raise InputError(f"{field}.type must be one of {', '.join(TYPES)}", field=field)
    if "description" in schema and not isinstance(schema["description"], str):
        raise InputError(f"{field}.description must be a string", field=field)
    if "enum" in schema:
        enum = schema["enum"]
        if not isinstance(enum, list) or not enum or any(isinstance(v, (dict, list)) for v in enum):
            raise InputError(f"{field}.enum must be a non-empty list of plain values", field=field)
    for key in ("minimum", "maximum", "minLength", "maxLength"):
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], (int, float))):
            raise InputError(f"{field}.{key} must be a number", field=field)
    props = schema.get("properties", {})
    if not isinstance(props, dict) or len(props) > MAX_PROPERTIES:
        raise InputError(f"{field}.properties must be an object of at most {MAX_PROPERTIES} fields", field=field)
    for name, sub in props.items():
        check_schema(sub, f"{field}.properties.{name}", depth=depth + 1)
    required = schema.get("required", [])
    if not isinstance(required, list) or any(r not in props for r in required):
        raise InputError(f"{field}.required must list names from properties", field=field)
    if "items" in schema:
        check_schema(schema["items"], f"{field}.items", depth=depth + 1)
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], bool):
        raise InputError(f"{field}.additionalProperties must be true or false", field=field)
    return schema


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict,
                              "null": type(None)}[t])


def validate(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Problems with ``value`` against a checked schema (empty = valid); messages go to the model."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if not any(_type_ok(value, t) for t in types):
        return [f"{path}: expected {'/'.join(types)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: must be one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: shorter than {schema['minLength']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{path}.{r}: required" for r in schema.get("required", []) if r not in value]
        for key, sub in value.items():
            if key in props:
                problems += validate(sub, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{path}.{key}: not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:100]):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    return problems[:10]


def expand_fields(spec: Any, field: str = "extraction_schema") -> dict:
    """Extraction fields: the shorthand ``{"confirmed": "boolean"}`` or a full object schema ->
    a checked object schema (every field optional: the call may not have covered it)."""
    if spec in (None, {}, ""):
        return {}
    if not isinstance(spec, dict):
        raise InputError(f"{field} must be a JSON object", field=field)
    if spec.get("type") == "object":
        return check_schema(spec, field)
    props = {}
    for name, t in spec.items():
        if isinstance(t, str):
            if t not in TYPES:
                raise InputError(f"{field}.{name}: type must be one of {', '.join(TYPES)}", field=field)
            props[name] = {"type": [t, "null"] if t != "null" else "null"}
        else:
            props[name] = t
    return check_schema({"type": "object", "properties": props}, field)
