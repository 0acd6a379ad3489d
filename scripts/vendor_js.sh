#!/usr/bin/env bash
# Vendors the board's JavaScript dependencies into static/vendor/ (a development-time step: the
# output is committed, so `make run` and `make test` never need Node).
#
#   bash scripts/vendor_js.sh
#
# npm installs the pinned packages into a temporary directory and esbuild (pinned too) bundles
# Yjs and its one dependency, lib0, into a single ES module, static/vendor/yjs/yjs.mjs, that the
# board's modules import (static/js/board/). Next to it: the licences (both MIT) and VERSION,
# naming every version that went in. To upgrade, change the pins below, run the script, run the
# board's tests, and commit static/vendor/ with this file.
set -euo pipefail

YJS_VERSION=13.6.33
LIB0_VERSION=0.2.120 # Yjs' dependency, pinned so the bundle is the same on every run
ESBUILD_VERSION=0.28.2

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/static/vendor/yjs"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

command -v npm >/dev/null || { echo "error: npm is needed (apt-get install -y npm)" >&2; exit 1; }

cd "$WORK"
npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact \
  "yjs@$YJS_VERSION" "lib0@$LIB0_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null
installed() { node -p "require('./node_modules/$1/package.json').version"; }
[ "$(installed yjs)" = "$YJS_VERSION" ] && [ "$(installed lib0)" = "$LIB0_VERSION" ] || {
  echo "error: npm installed yjs $(installed yjs), lib0 $(installed lib0)" >&2; exit 1; }

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
