#!/usr/bin/env python3
"""The official JSON-Schema-Test-Suite (draft2020-12, shipped in the `jsonschema` sdist on PyPI)
through `fourcast constrain --strict --check`: for every case whose schema compiles (exit 2 =
unsupported, counted as such), each valid instance must be accepted (exit 0) and each invalid
one rejected (exit 1). Instances are serialized compactly with object keys in the grammar's
fixed order (`properties` order first). Prints coverage per keyword file.

  tools/structured/run_schema_suite.py [--suite DIR] [--bin build/apps/cli/fourcast]
      [--tokenizer models/tiny-gemma4/tokenizer.json] [--json OUT]
Without --suite it downloads jsonschema==4.26.0's sdist with pip into a temporary folder.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fetch_suite(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                    "--no-deps", "jsonschema==4.26.0", "-d", tmp], check=True)
    tgz = glob.glob(os.path.join(tmp, "jsonschema-*.tar.gz"))[0]
    with tarfile.open(tgz) as t:
        t.extractall(tmp, filter="data")
    return glob.glob(os.path.join(tmp, "jsonschema-*", "json", "tests", "draft2020-12"))[0]


def order(inst, schema, root, depth=0):
    """Object keys in schema order (properties, then required, then the rest)."""
    if depth > 50 or not isinstance(schema, dict):
        return inst
    if "$ref" in schema and isinstance(schema["$ref"], str) and schema["$ref"].startswith("#"):
        cur = root
        for part in schema["$ref"][2:].split("/") if len(schema["$ref"]) > 1 else []:
            cur = cur.get(part, {}) if isinstance(cur, dict) else {}
        return order(inst, cur, root, depth + 1)
    if isinstance(inst, dict):
        props = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
        keys = [k for k in props if k in inst]
        keys += [k for k in schema.get("required", []) if k in inst and k not in keys] if isinstance(schema.get("required"), list) else []
        keys += [k for k in inst if k not in keys]
        addl = schema.get("additionalProperties", True)
        return {k: order(inst[k], props.get(k, addl), root, depth + 1) for k in keys}
    if isinstance(inst, list):
        pre = schema.get("prefixItems", []) if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items", True)
        return [order(x, pre[i] if i < len(pre) else items, root, depth + 1) for i, x in enumerate(inst)]
    return inst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/apps/cli/fourcast"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "models/tiny-gemma4/tokenizer.json"))
    ap.add_argument("--json")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    suite = a.suite or fetch_suite(tmp)
    rows, totals = [], dict(cases=0, unsupported=0, ok=0, valid_refused=0, invalid_accepted=0)
    for path in sorted(glob.glob(os.path.join(suite, "*.json"))):
        kw = os.path.basename(path)[:-5]
        r = dict(keyword=kw, cases=0, unsupported=0, instances=0, ok=0, valid_refused=0,
                 invalid_accepted=0)
        for case in json.load(open(path)):
            r["cases"] += 1
            sf = os.path.join(tmp, "schema.json")
            json.dump(case["schema"], open(sf, "w"))
            results = []
            for t in case["tests"]:
                inf = os.path.join(tmp, "inst.txt")
                with open(inf, "w") as f:
                    f.write(json.dumps(order(t["data"], case["schema"], case["schema"]),
                                       ensure_ascii=False, separators=(",", ":")))
                p = subprocess.run([a.bin, "constrain", "--tokenizer", a.tokenizer, "--strict",
                                    "--quiet", "--json-schema", sf, "--check", inf],
                                   capture_output=True, text=True)
                if p.returncode == 2:
                    results = None
                    break
                results.append((t["valid"], p.returncode == 0, t["description"]))
            if results is None:
                r["unsupported"] += 1
                continue
            for valid, accepted, desc in results:
                r["instances"] += 1
                if valid == accepted:
                    r["ok"] += 1
                elif valid:
                    r["valid_refused"] += 1
                    print(f"  {kw}: valid refused: {case['description']} / {desc}")
                else:
                    r["invalid_accepted"] += 1
                    print(f"  {kw}: invalid accepted: {case['description']} / {desc}")
        rows.append(r)
        for k in totals:
            totals[k] += r.get(k, 0)
    print(f"{'keyword':24} {'cases':>5} {'unsup':>5} {'inst':>5} {'ok':>5} {'v-ref':>5} {'i-acc':>5}")
    for r in rows:
        print(f"{r['keyword']:24} {r['cases']:5} {r['unsupported']:5} {r['instances']:5} {r['ok']:5} "
              f"{r['valid_refused']:5} {r['invalid_accepted']:5}")
    print("total", totals)
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
