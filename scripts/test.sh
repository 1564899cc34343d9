#!/usr/bin/env bash
# Runs every test file under test/ with Node's own runner (through tsx).
# Node 20's --test does not expand globs itself, so the list is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find test -name '*.test.ts' | sort)
exec node --import tsx --test --test-reporter=spec "${files[@]}"
