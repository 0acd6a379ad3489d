#!/usr/bin/env bash
# Browser tests drive Debian's Chromium at /usr/bin/chromium. Install it when missing (as root),
# or say exactly what to run (as anyone else). Never skip silently.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: browser tests need Chromium at $CHROMIUM, which is missing. Install it with:" >&2
    echo "    sudo apt-get install -y chromium" >&2
    exit 1
fi

echo "Chromium is missing; installing Debian's chromium package..." >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; then
    echo "error: 'apt-get install chromium' failed; browser tests cannot run without $CHROMIUM" >&2
    exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "error: the chromium package installed, but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "Installed: $("$CHROMIUM" --version 2>/dev/null || echo chromium)" >&2
