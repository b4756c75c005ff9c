#!/usr/bin/env bash
# expect_exit.sh CODE TEXT COMMAND...: passes when COMMAND exits with CODE and its output contains TEXT.
code="$1"; text="$2"; shift 2
output=$("$@" 2>&1); status=$?
echo "$output"
if [ "$status" -ne "$code" ]; then echo "expected exit $code, got $status"; exit 1; fi
if ! grep -qF -- "$text" <<<"$output"; then echo "output lacks: $text"; exit 1; fi
echo "ok: exit $status"
