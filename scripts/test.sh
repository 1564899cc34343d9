#!/usr/bin/env bash
# Runs the test files with Node's own runner (through tsx): every file under test/, or with
# `unit` only those that need neither root, the mail servers nor GnuPG (scripts/test-files.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(node --import tsx scripts/test-files.ts "$@")
exec node --import tsx --test --test-reporter=spec "${files[@]}"
