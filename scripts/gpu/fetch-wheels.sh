#!/usr/bin/env bash
# Downloads the openai SDK and the packages it needs that the GPU machine's image lacks, as
# Python 3.12 manylinux wheels, into .whl/ (ignored by git), so device-check.sh's serve step can
# talk to the server through the SDK (carry=[..., ".whl"]). Without them it uses plain HTTP.
# Versions: those of tests/server/requirements.txt's resolution in .venv-test.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || grep -qx '/.whl/' .gitignore || echo '/.whl/' >>.git/info/exclude
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl openai==3.54.0 distro==1.9.0 jiter==0.19.0 pydantic==2.14.4 pydantic_core==2.50.5 \
  sniffio==1.3.1 annotated-types==0.8.0 typing-inspection==0.4.5
du -sh .whl
