#!/bin/sh
# One-time set-up on Debian 12 (as root; idempotent): system packages, npm dependencies, native addon,
# TypeScript build and web page. The README's two commands start with it. chromium is the browser that
# test/web.test.ts drives through playwright-core (which downloads no browser of its own).
set -eu
cd "$(dirname "$0")/.."
PKGS="libtorch-dev libopenblas0-openmp dataset-fashion-mnist python3-torchvision python3-torch python3-onnx g++ make python3 chromium libgloo-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi
[ -f build/Release/convzoo.node ] || npm run build:native
npm run build --silent
