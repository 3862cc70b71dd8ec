#!/usr/bin/env bash
# System packages the test suite needs, installed from Debian when missing (needs root + apt).
set -euo pipefail
missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v bwrap >/dev/null 2>&1; then
  missing+=(bubblewrap)
fi
if ! command -v curl >/dev/null 2>&1; then
  missing+=(curl)  # docs/server.md calls the REST API as a user would
fi
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)  # the dashboard's browser tests drive it through Playwright
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: the tests need these system packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
