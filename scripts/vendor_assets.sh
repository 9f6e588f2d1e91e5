#!/usr/bin/env bash
# Copy the pinned front-end packages from npm into src/watchkeeper/web/static/vendor/.
# The copied files are committed, so installing Watchkeeper needs neither npm nor the internet;
# run this only to change a version (then commit the result).
#
#   scripts/vendor_assets.sh
#
# htmx 2.0 rather than 4.0: 4.0 is weeks old, 2.0 is the maintained long-term line.
set -euo pipefail
HTMX=2.0.11
UPLOT=1.6.32

cd "$(dirname "$0")/.."
out=src/watchkeeper/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch NAME VERSION -> unpacked in $work/NAME
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  mkdir -p "$work/$1"
  tar -xzf "$work/$1-$2.tgz" -C "$work/$1" --strip-components=1
}

fetch htmx.org "$HTMX"
fetch uplot "$UPLOT"

rm -rf "$out" && mkdir -p "$out/htmx" "$out/uplot"
cp "$work/htmx.org/dist/htmx.min.js" "$work/htmx.org/LICENSE" "$out/htmx/"
cp "$work/uplot/dist/uPlot.iife.min.js" "$work/uplot/dist/uPlot.min.css" "$work/uplot/LICENSE" "$out/uplot/"
cat > "$out/VERSIONS" <<VERSIONS
htmx.org $HTMX (npm), 0BSD
uplot $UPLOT (npm), MIT
VERSIONS
find "$out" -type f | sort
