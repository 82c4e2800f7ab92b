#!/usr/bin/env bash
# Install what tests/test_report.py needs to render `edgekit report` pages on a Debian 12 machine:
#   - chromium (headless: --dump-dom, --screenshot, console messages on stderr),
#   - Liberation fonts (Arial's metrics, which plots.py lays chart labels out for), so screenshots
#     match what most readers' browsers show and no text is drawn as boxes.
# Idempotent: installs only what is missing, then checks that chromium renders a page.
set -euo pipefail

source "$(dirname "$0")/apt_missing.sh"

install_missing setup_report \
  chromium "command -v chromium" \
  fonts-liberation "test -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"

# Check chromium really renders, not only that it is installed.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '<!DOCTYPE html><title>probe</title><p id="probe">rendered</p>\n' >"$tmp/probe.html"
dom=$(chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$tmp/profile" --dump-dom "file://$tmp/probe.html" 2>/dev/null)
grep -q '<p id="probe">rendered</p>' <<<"$dom" \
  || { echo "[setup_report] chromium --headless did not render a test page" >&2; exit 1; }
echo "[setup_report] ready: $(chromium --version 2>/dev/null | head -1)"
