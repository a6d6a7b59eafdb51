#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser test (tests/integration/test_dashboard.py).
# Does nothing when chromium is already there. Without root or apt-get it says why and goes on (exit 0):
# the test then skips, printing the reason. A failed install is reported the same way, never fatal.
set -uo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: chromium is not installed and this is not root with apt-get;" \
    "the dashboard browser test will be skipped" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "chromium.sh: installing chromium (apt-get)" >&2
if ! apt-get install -y -q chromium >/dev/null; then
  # The package lists may be missing or stale on a fresh machine: refresh them once and retry.
  apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "chromium.sh: could not install chromium; the dashboard browser test will be skipped" >&2
fi
exit 0
