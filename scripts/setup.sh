#!/bin/sh
# One-time set-up on Debian 12 (as root; idempotent): system packages, npm dependencies, native addon,
# TypeScript build. The README's two commands start with it.
set -eu
cd "$(dirname "$0")/.."
PKGS="libtorch-dev libopenblas0-openmp dataset-fashion-mnist python3-torchvision python3-torch python3-onnx g++ make python3"
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
