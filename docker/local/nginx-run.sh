#!/bin/sh
# Start command of the local nginx image (docker/local/nginx.Containerfile).
# docker/nginx/nginx.conf names its replicas as `server aeserve:8000 resolve ...;`: nginx >= 1.27.3
# (the official image) re-resolves that name by itself. Debian bookworm's nginx (1.22) has no
# `resolve` on upstream servers, so this script does the same from outside: it writes the config
# to /tmp with one `server ADDRESS:PORT ...;` line per address the name resolves to, and every
# AESERVE_NGINX_RESOLVE_INTERVAL seconds (5, nginx.conf's `valid=5s`) resolves again and reloads
# nginx (graceful: old workers finish their requests) when the set of addresses changed.
set -eu
src=${AESERVE_NGINX_CONF:-/etc/nginx/nginx.conf}
conf=/tmp/nginx.conf
interval=${AESERVE_NGINX_RESOLVE_INTERVAL:-5}

render() {
  while IFS= read -r line; do
    indent=${line%%[! ]*}
    case ${line#"$indent"} in
      "server "*:*" resolve"*)
        set -- ${line#*server}
        name=${1%:*} port=${1##*:}
        shift 2  # NAME:PORT and `resolve`
        opts="$*"
        addrs=$(getent ahostsv4 "$name" 2>/dev/null | while read -r a _; do echo "$a"; done | sort -u)
        if [ -z "$addrs" ]; then
          # Nothing resolves yet (replicas still starting): a placeholder that is never used,
          # so nginx answers its problem+json 503 until the next round finds them.
          echo "${indent}server 127.0.0.1:9 down;"
        else
          for a in $addrs; do echo "${indent}server $a:$port ${opts%;};"; done
        fi
        ;;
      *) printf '%s\n' "$line" ;;
    esac
  done < "$src"
}

render > "$conf"
nginx -c "$conf" -g 'daemon off;' &
pid=$!
# SIGQUIT (the image's STOPSIGNAL) and SIGTERM: graceful stop, as the official image does.
trap 'kill -QUIT "$pid" 2>/dev/null' QUIT TERM INT
while kill -0 "$pid" 2>/dev/null; do
  sleep "$interval" & wait $! || true
  render > "$conf.new" || continue
  if ! cmp -s "$conf.new" "$conf"; then
    mv "$conf.new" "$conf"
    nginx -c "$conf" -t -q && kill -HUP "$pid" && echo "nginx-run: upstream addresses changed, reloaded" >&2
  fi
done
wait "$pid"
