#!/usr/bin/env bash
# Vendor the offline /docs and /redoc assets into service/web/vendor/ from the npm registry
# (`make web-vendor`). Pinned versions and their registry integrity hashes: the same files every
# time. The files are committed; nothing runs at serve time and no Node is needed to serve.
set -euo pipefail
dest=service/web/vendor
declare -A pkgs=(
  [swagger-ui-dist]=5.35.0
  [redoc]=2.5.4
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in "${!pkgs[@]}"; do
  version=${pkgs[$name]}
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  mkdir -p "$tmp/$name" && tar xzf "$tmp/$name-$version.tgz" -C "$tmp/$name"
done
rm -rf "$dest" && mkdir -p "$dest/swagger-ui" "$dest/redoc"
s=$tmp/swagger-ui-dist/package
cp "$s/swagger-ui-bundle.js" "$s/swagger-ui.css" "$s/LICENSE" "$s/NOTICE" \
  "$s/swagger-ui-bundle.js.LICENSE.txt" "$dest/swagger-ui/"
r=$tmp/redoc/package
cp "$r/bundles/redoc.standalone.js" "$r/bundles/redoc.standalone.js.LICENSE.txt" "$r/LICENSE" \
  "$dest/redoc/"
# The sourceMappingURL comments point at .map files we do not ship (a 404 in the console).
sed -i '/^\/\/# sourceMappingURL=/d' "$dest/swagger-ui/swagger-ui-bundle.js" \
  "$dest/redoc/redoc.standalone.js"
sed -i 's#/\*\# sourceMappingURL=[^*]*\*/##' "$dest/swagger-ui/swagger-ui.css"
# ReDoc's side menu shows a "powered by" logo loaded from its CDN: the one request to another
# origin either bundle makes. Patched to an empty inline SVG (and checked, so that an upgrade
# that moves it fails here instead of reaching out at run time).
logo='src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
grep -qF "$logo" "$dest/redoc/redoc.standalone.js"
sed -i "s#$logo#src:\"data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E\"#" \
  "$dest/redoc/redoc.standalone.js"
! grep -q 'cdn\.redoc\.ly' "$dest/redoc/redoc.standalone.js"
# Stored gzipped (a quarter of the size in the repository, the image and on the wire); the
# service sends them as they are with Content-Encoding: gzip (service/http/webui.py). -n: no name or
# time in the header, so the same input gives the same bytes.
gzip -9n "$dest/swagger-ui/swagger-ui-bundle.js" "$dest/swagger-ui/swagger-ui.css" \
  "$dest/redoc/redoc.standalone.js"
{
  echo "Vendored by scripts/vendor-web.sh (make web-vendor) from the npm registry; do not edit."
  echo "Patched: sourceMappingURL comments removed; ReDoc's CDN logo replaced by an empty SVG."
  echo "The bundles are stored gzipped (*.gz) and served as such (Content-Encoding: gzip)."
  for name in swagger-ui-dist redoc; do
    echo "$name ${pkgs[$name]} $(node -p "require('$tmp/$name/package/package.json').license")"
  done
} > "$dest/VERSIONS"
(cd "$dest" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS)
echo "vendored into $dest:"; cat "$dest/VERSIONS"
