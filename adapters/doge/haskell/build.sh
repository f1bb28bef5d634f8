#!/usr/bin/env bash
# Build doge-core-exe (the Haskell port of the DOGE reducer) into build/.
# Needs only GHC's boot packages; installs Debian's ghc when ghc is missing.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v ghc >/dev/null 2>&1; then
  echo "ghc not found: installing Debian's ghc" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq ghc >&2
fi
mkdir -p build/obj
ghc -O2 -j1 -rtsopts "-with-rtsopts=-A2m" -outputdir build/obj -o build/doge-core-exe Main.hs >build/ghc.log 2>&1 || {
  cat build/ghc.log >&2
  exit 1
}
echo "built $(pwd)/build/doge-core-exe"
