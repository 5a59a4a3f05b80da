#!/usr/bin/env python3
"""Fails if a library under src/ includes a header from a layer it may not depend on.

The allowed dependencies mirror the CMake targets (DEVELOPERS.md):
core <- http <- server; core <- io, audio, quant <- backend <- backend/{cpu,cuda} <- kv, sample, model/gemma4
(core <- grammar <- sample) <- spec <- engine
<- server, apps; core <- tokenizer <- chat <- server.
"""
import pathlib
import re
import sys

ALLOWED = {
    "core": set(),
    "http": {"core"},
    "io": {"core"},
    "media": {"core"},
    "audio": {"core"},
    "quant": {"core"},
    "backend": {"core", "quant"},
    "backend/cpu": {"backend", "core", "quant"},
    "backend/cuda": {"backend", "core", "quant"},
    "kv": {"backend", "core"},
    "grammar": {"core"},
    "sample": {"grammar", "core"},
    "model/gemma4": {"backend", "io", "kv", "quant", "core"},
    "quantizer": {"model/gemma4", "backend/cpu", "backend", "io", "kv", "quant", "tokenizer", "core"},
    "spec": {"model/gemma4", "kv", "sample", "grammar", "backend", "io", "quant", "core"},
    "engine": {"audio", "spec", "model/gemma4", "kv", "sample", "grammar", "backend", "io", "quant", "core"},
    "tokenizer": {"core"},
    "benchserve": {"core"},
    "chat": {"tokenizer", "core"},
    "server": {"http", "audio", "engine", "spec", "model/gemma4", "kv", "sample", "grammar", "backend",
               "backend/cpu", "backend/cuda", "io", "quant", "tokenizer", "chat", "media", "core"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    """Longest ALLOWED key that prefixes the path (e.g. backend/cpu before backend)."""
    best = None
    for key in ALLOWED:
        if rel == key or rel.startswith(key + "/"):
            if best is None or len(key) > len(best):
                best = key
    return best


def main():
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    errors = []
    for f in sorted(src.rglob("*")):
        if f.suffix not in (".h", ".cpp", ".cu", ".cuh"):
            continue
        own = layer_of(str(f.relative_to(src).parent))
        if own is None:
            errors.append(f"{f.relative_to(src)}: folder is not a known layer")
            continue
        for inc in INCLUDE.findall(f.read_text(errors="replace")):
            dep = layer_of(str(pathlib.PurePosixPath(inc).parent))
            if dep is None or dep == own:
                continue
            if dep not in ALLOWED[own]:
                errors.append(f"{f.relative_to(src)}: includes {inc} ({own} may not use {dep})")
    for e in errors:
        print(e)
    print(f"layering: {len(errors)} violation(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
