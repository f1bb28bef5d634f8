#!/usr/bin/env bash
# Build the Haskell port of the DOGE reducer into build/:
#   build/doge-core-exe      the production binary (no seeded mutants compiled in)
#   build/doge-core-mutants  the same code plus the seeded mutants (-DMUTANTS: --mutant, --list-mutants)
# Both with -Wall; a warning fails the build (-Werror), so the log shows none.
# Needs only GHC's boot packages; installs Debian's ghc when ghc is missing.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v ghc >/dev/null 2>&1; then
  echo "ghc not found: installing Debian's ghc" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq ghc >&2
fi
mkdir -p build/obj build/obj-mutants
flags=(-O2 -j1 -Wall -Werror -rtsopts "-with-rtsopts=-A2m" -I.)
ghc "${flags[@]}" -outputdir build/obj -o build/doge-core-exe Main.hs >build/ghc.log 2>&1 || {
  cat build/ghc.log >&2
  exit 1
}
ghc "${flags[@]}" -DMUTANTS -outputdir build/obj-mutants -o build/doge-core-mutants Main.hs >build/ghc-mutants.log 2>&1 || {
  cat build/ghc-mutants.log >&2
  exit 1
}
echo "built $(pwd)/build/doge-core-exe and $(pwd)/build/doge-core-mutants"
