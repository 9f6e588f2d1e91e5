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
# Swagger UI for /api/docs, served from /static under the pages' CSP (no CDN).
SWAGGER_UI=5.36.0

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
fetch swagger-ui-dist "$SWAGGER_UI"

rm -rf "$out" && mkdir -p "$out/htmx" "$out/uplot" "$out/swagger-ui"
cp "$work/htmx.org/dist/htmx.min.js" "$work/htmx.org/LICENSE" "$out/htmx/"
cp "$work/uplot/dist/uPlot.iife.min.js" "$work/uplot/dist/uPlot.min.css" "$work/uplot/LICENSE" "$out/uplot/"
# The bundle and its stylesheet only: the page and its start-up script are ours (web/api_docs.py,
# static/api-docs.js), since the package's index.html starts Swagger UI from an inline script.
cp "$work/swagger-ui-dist/swagger-ui-bundle.js" "$work/swagger-ui-dist/swagger-ui.css" \
   "$work/swagger-ui-dist/LICENSE" "$work/swagger-ui-dist/NOTICE" "$out/swagger-ui/"
# No source maps are shipped: drop the references so a browser's developer tools do not ask for them.
sed -i '/^\/\/# sourceMappingURL=/d' "$out/swagger-ui/swagger-ui-bundle.js"
sed -i 's|/\*# sourceMappingURL=[^*]*\*/||' "$out/swagger-ui/swagger-ui.css"
cat > "$out/VERSIONS" <<VERSIONS
htmx.org $HTMX (npm), 0BSD
uplot $UPLOT (npm), MIT
swagger-ui-dist $SWAGGER_UI (npm), Apache-2.0
VERSIONS
find "$out" -type f | sort
