#!/usr/bin/env bash
# Vendors Parley's third-party JavaScript into static/vendor/ (a development-time step: the
# output is committed, so `make run` and `make test` never need Node).
#
#   bash scripts/vendor_js.sh
#
# npm installs the pinned packages into a temporary directory and esbuild (pinned too) bundles
# Yjs and its one dependency, lib0, into a single ES module, static/vendor/yjs/yjs.mjs, that the
# board's modules import (static/js/board/). Next to it: the licences (both MIT) and VERSION,
# naming every version that went in.
#
# axe-core, the accessibility engine the browser tests run on every page (tests/test_a11y_browser.py;
# no page of the product loads it), is copied as published: static/vendor/axe-core/axe.min.js with
# its licence (MPL-2.0) and VERSION.
#
# To upgrade, change the pins below, run the script, run the board's and the accessibility
# tests, and commit static/vendor/ with this file.
set -euo pipefail

YJS_VERSION=13.6.33
LIB0_VERSION=0.2.120 # Yjs' dependency, pinned so the bundle is the same on every run
ESBUILD_VERSION=0.28.2
AXE_VERSION=4.14.1

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/static/vendor/yjs"
AXE_OUT="$ROOT/static/vendor/axe-core"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

command -v npm >/dev/null || { echo "error: npm is needed (apt-get install -y npm)" >&2; exit 1; }

cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact \
  "yjs@$YJS_VERSION" "lib0@$LIB0_VERSION" "esbuild@$ESBUILD_VERSION" "axe-core@$AXE_VERSION" >/dev/null
installed() { node -p "require('./node_modules/$1/package.json').version"; }
[ "$(installed yjs)" = "$YJS_VERSION" ] && [ "$(installed lib0)" = "$LIB0_VERSION" ] \
  && [ "$(installed axe-core)" = "$AXE_VERSION" ] || {
  echo "error: npm installed yjs $(installed yjs), lib0 $(installed lib0), axe-core $(installed axe-core)" >&2; exit 1; }

# Everything Yjs exports, as one self-contained module (no bare imports left for the browser).
echo 'export * from "yjs";' > entry.mjs
npx --no-install esbuild entry.mjs --bundle --format=esm --platform=browser --target=es2020 \
  --minify --legal-comments=eof --outfile=yjs.mjs --log-level=warning

mkdir -p "$OUT"
cp yjs.mjs "$OUT/yjs.mjs"
cp node_modules/yjs/LICENSE "$OUT/LICENSE.yjs"
cp node_modules/lib0/LICENSE "$OUT/LICENSE.lib0"
cat > "$OUT/VERSION" <<VERSION
yjs $YJS_VERSION (MIT, LICENSE.yjs) https://github.com/yjs/yjs
lib0 $LIB0_VERSION (MIT, LICENSE.lib0) https://github.com/dmonad/lib0
bundled by esbuild $ESBUILD_VERSION with scripts/vendor_js.sh (--bundle --format=esm --minify)
yjs.mjs sha256 $(sha256sum yjs.mjs | cut -d' ' -f1)
VERSION
echo "static/vendor/yjs: $(wc -c < "$OUT/yjs.mjs") bytes"
cat "$OUT/VERSION"

mkdir -p "$AXE_OUT"
cp node_modules/axe-core/axe.min.js "$AXE_OUT/axe.min.js"
cp node_modules/axe-core/LICENSE "$AXE_OUT/LICENSE"
cat > "$AXE_OUT/VERSION" <<VERSION
axe-core $AXE_VERSION (MPL-2.0, LICENSE) https://github.com/dequelabs/axe-core
axe.min.js as published on npm, unchanged; for the browser tests only (tests/test_a11y_browser.py)
axe.min.js sha256 $(sha256sum "$AXE_OUT/axe.min.js" | cut -d' ' -f1)
VERSION
echo "static/vendor/axe-core: $(wc -c < "$AXE_OUT/axe.min.js") bytes"
cat "$AXE_OUT/VERSION"
