"""Cut a published OpenAPI document down to the routes Hatchway uses, with every schema they reach.

Maintainer tool, run by hand when a vendor spec is bumped; tests read only the result in
``tests/contracts/``. Usage::

    python tools/spec_subset.py SPEC.yaml OUT.yaml --source "repo, path @ commit" \
        --path /workflow --path /workflow/{workflowId} ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def subset(spec: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    missing = [p for p in paths if p not in spec["paths"]]
    if missing:
        raise SystemExit(f"not in the spec: {missing}")
    out = {k: v for k, v in spec.items() if k not in ("paths", "components", "tags")}
    out["paths"] = {p: spec["paths"][p] for p in paths}
    keep: dict[str, set[str]] = {}
    todo = _refs(out["paths"])
    seen: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, kind, name = ref.split("/", 3)
        keep.setdefault(kind, set()).add(name)
        todo |= _refs(spec[section][kind][name])
    components = spec.get("components", {})
    out["components"] = {kind: {n: components[kind][n] for n in sorted(names)} for kind, names in keep.items()}
    if "securitySchemes" in components:
        out["components"]["securitySchemes"] = components["securitySchemes"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", required=True, help="where the spec comes from (repo, path @ commit)")
    parser.add_argument("--path", action="append", required=True, dest="paths")
    args = parser.parse_args(argv)
    spec = yaml.load(args.spec.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    cut = subset(spec, args.paths)
    header = (f"# {spec['info']['title']} {spec['info']['version']}: the routes Hatchway uses, with every\n"
              f"# schema they reference, cut by tools/spec_subset.py from\n# {args.source}\n")
    args.out.write_text(header + yaml.safe_dump(cut, sort_keys=False, width=110))
    print(f"{args.out}: {len(cut['paths'])} paths, "
          f"{sum(len(v) for v in cut['components'].values())} components")
    return 0


if __name__ == "__main__":
    sys.exit(main())
