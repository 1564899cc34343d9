#!/usr/bin/env bash
# Runs the test files with Node's own runner (through tsx): every file under test/, or with
# `unit` only those that need neither root, the mail servers nor GnuPG (scripts/test-files.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(node --import tsx scripts/test-files.ts "$@")
if [[ "${1-}" == unit ]]; then
  # Fewer property, fuzz and kill-point cases (kit/runs.ts); two files at a time, as many of
  # them wait on a child process or scrypt (node's default is one fewer than the cores).
  export OFFRECORD_TEST_SET=unit
  exec node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
fi
exec node --import tsx --test --test-reporter=spec "${files[@]}"
