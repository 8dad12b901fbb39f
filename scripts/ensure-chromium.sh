#!/usr/bin/env bash
# Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright.
# Install it from Debian's packages only when a browser test exists and the
# binary is missing; never let a test tool download a browser of its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM=/usr/bin/chromium

[ -x "$CHROMIUM" ] && exit 0
grep -rqs --include='*.py' "pytest.mark.browser" tests || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: browser tests exist but $CHROMIUM is missing and this is not root;" \
         "install it with: sudo apt-get install chromium (browser tests will fail or skip)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; install Chromium yourself" >&2
    exit 0
fi

echo "ensure-chromium: installing Debian's chromium for the browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2; exit 1; }
