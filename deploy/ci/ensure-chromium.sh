#!/usr/bin/env bash
# Makes sure headless Chromium (Debian's `chromium` package) is present for the dashboard's
# browser test (tests/monitoring/test_dashboard_browser.py). Idempotent; does nothing when a
# chromium binary is already on the machine. Needs root (CI machines run as root) or sudo.
set -euo pipefail

find_chromium() {
    for candidate in "${CHROMIUM_BIN:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || return 1
}

if found="$(find_chromium)"; then
    echo "chromium present: $found"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "ensure-chromium: chromium is missing and this user cannot install packages (not root, no sudo)" >&2
        exit 1
    fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium is missing and apt-get is not available on this machine" >&2
    exit 1
fi

echo "installing chromium (Debian package) ..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk >/dev/null \
    || $SUDO apt-get install -y -q chromium >/dev/null

found="$(find_chromium)" || { echo "ensure-chromium: installation finished but no chromium binary found" >&2; exit 1; }
echo "chromium installed: $found ($("$found" --version 2>/dev/null || echo 'version unknown'))"
