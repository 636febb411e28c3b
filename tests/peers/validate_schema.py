#!/usr/bin/env python3
"""An independent validator for the head-office payloads: python-jsonschema, Draft 2020-12,
with format checking ("date-time", "uri") switched on and verified to be active.

Reads JSON lines on stdin, one case per line:

    {"case": "alert/alarm-link/full", "payload": {...}, "schema_file": "branch-alert-1.json"}

`schema_file` is optional: without it the schema comes from the payload's own "schema" field
("branch-alert/1" -> branch-alert-1.json). Writes one JSON line per case on stdout:

    {"case": "...", "schema_file": "...", "valid": true|false, "errors": ["path: message", ...]}

--mode chooses how the schemas are read:
  open           as published (the default). The schemas allow properties they do not list, so
                 that adding an optional field keeps a payload's version (docs/CONTRACT.md).
  strict         also forbid properties that the schema does not document: adds
                 "unevaluatedProperties": false to every object schema. Catches a field that
                 the Rust types gained but the schema does not mention.
  required-only  strict, and forbid the optional properties too: a payload with every
                 optional field left out must pass, so every field that is always sent is
                 listed in "required" (the schemas are strict about required fields).

Before any case, every schema in --schema-dir is checked against the Draft 2020-12 metaschema.

Exit status: 0 every case was processed (whatever the verdicts), 2 bad usage or input,
3 a dependency is missing (run scripts/test), 4 a schema is itself invalid.

usage: validate_schema.py [--schema-dir DIR] [--mode open|strict|required-only] < cases.jsonl
"""
import argparse
import copy
import json
import pathlib
import sys

try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError as e:  # pragma: no cover - the message is the point
    print(
        f"validate_schema.py: cannot import jsonschema ({e}); run scripts/test, which "
        "installs tests/requirements.txt into .venv",
        file=sys.stderr,
    )
    sys.exit(3)

REQUIRED_FORMATS = ("date-time", "uri")


def tighten(schema, required_only):
    """A copy of `schema` in which every object schema forbids undocumented properties, and
    with `required_only` also the properties it does not require."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("unevaluatedProperties", False)
                if required_only:
                    required = set(node.get("required", []))
                    node["properties"] = {k: v for k, v in node["properties"].items() if k in required}
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def schema_file_for(payload):
    name = payload.get("schema") if isinstance(payload, dict) else None
    if not isinstance(name, str) or "/" not in name:
        return None
    base, version = name.rsplit("/", 1)
    return f"{base}-{version}.json"


def describe(err):
    path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path) or "(root)"
    return f"{path}: {err.message}"


def main() -> int:
    here = pathlib.Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema-dir", type=pathlib.Path, default=here.parent.parent / "docs" / "schemas")
    ap.add_argument("--mode", choices=["open", "strict", "required-only"], default="open")
    args = ap.parse_args()

    checker = Draft202012Validator.FORMAT_CHECKER
    missing = [f for f in REQUIRED_FORMATS if f not in checker.checkers]
    if missing:
        print(
            f"validate_schema.py: jsonschema {jsonschema.__version__} cannot check formats "
            f"{missing} (rfc3339-validator / rfc3986-validator missing); run scripts/test",
            file=sys.stderr,
        )
        return 3

    validators = {}
    for path in sorted(args.schema_dir.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (json.JSONDecodeError, jsonschema.SchemaError) as e:
            print(f"validate_schema.py: {path.name} is not a valid Draft 2020-12 schema: {e}", file=sys.stderr)
            return 4
        if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
            print(f"validate_schema.py: {path.name} does not declare Draft 2020-12 in $schema", file=sys.stderr)
            return 4
        if args.mode != "open":
            schema = tighten(schema, required_only=args.mode == "required-only")
        validators[path.name] = Draft202012Validator(schema, format_checker=checker)
    if not validators:
        print(f"validate_schema.py: no schemas in {args.schema_dir}", file=sys.stderr)
        return 2

    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            payload = case["payload"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            print(f"validate_schema.py: line {n}: not a case ({e})", file=sys.stderr)
            return 2
        name = case.get("case", f"line {n}")
        file = case.get("schema_file") or schema_file_for(payload)
        if file not in validators:
            result = {"case": name, "schema_file": file, "valid": False, "errors": [f"no schema {file!r} in {args.schema_dir}"]}
        else:
            errors = sorted(validators[file].iter_errors(payload), key=lambda e: list(e.absolute_path))
            result = {"case": name, "schema_file": file, "valid": not errors, "errors": [describe(e) for e in errors]}
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
