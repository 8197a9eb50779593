#!/bin/sh
# Start command of the local nginx image (docker/local/nginx.Containerfile).
# docker/nginx/nginx.conf names the replicas as `server aeserve:8000 resolve ...;` in its upstream:
# nginx >= 1.27.3 (the official image) re-resolves that name by itself. Debian bookworm's nginx
# (1.22) has no `resolve` there, so this script writes the config to /tmp with the same effect
# by the means 1.22 has: `proxy_pass http://$variable` (`grpc_pass grpc://$variable` for the
# gRPC upstream), which nginx resolves per request through
# the `resolver` (cached `valid=5s`), spreading requests over every address (the resolver rotates
# them) and retrying on the others (proxy_next_upstream). No reload, so no client connection is
# ever closed under it. What that form lacks: the upstream's keepalive pool and max_fails.
# The resolver is the container's own (first nameserver of /etc/resolv.conf): 127.0.0.11 under
# Docker, the network's aardvark-dns under podman.
set -eu
src=${AESERVE_NGINX_CONF:-/etc/nginx/nginx.conf}
conf=/tmp/nginx.conf
dns=$(sed -n 's/^nameserver[[:space:]]\{1,\}\([0-9.]\{1,\}\)$/\1/p' /etc/resolv.conf | head -n 1)

upstream="" targets=""  # the upstream block being read; "NAME=HOST:PORT" pairs found
while IFS= read -r line; do
  indent=${line%%[! ]*}
  body=${line#"$indent"}
  case $body in
    "upstream "*"{"*)
      upstream=${body#upstream }; upstream=${upstream%%[ {]*}
      printf '%s\n' "$line" ;;
    "}"*) upstream=""; printf '%s\n' "$line" ;;
    "server "*:*" resolve"*)
      set -- ${body#server }
      targets="$targets $upstream=$1"
      # The block keeps a placeholder: nothing proxies to it any more.
      echo "${indent}server 127.0.0.1:9 down;" ;;
    "resolver "*)
      if [ -n "$dns" ]; then
        set -- ${body#resolver }
        shift
        echo "${indent}resolver $dns $*"
      else
        printf '%s\n' "$line"
      fi ;;
    "proxy_pass http://"*";")
      name=${body#proxy_pass http://}; name=${name%;}
      target=""
      for pair in $targets; do [ "${pair%%=*}" = "$name" ] && target=${pair#*=}; done
      if [ -n "$target" ]; then
        echo "${indent}set \$resolved_$name $target;"
        echo "${indent}proxy_pass http://\$resolved_$name;"
      else
        printf '%s\n' "$line"
      fi ;;
    "grpc_pass grpc://"*";")
      name=${body#grpc_pass grpc://}; name=${name%;}
      target=""
      for pair in $targets; do [ "${pair%%=*}" = "$name" ] && target=${pair#*=}; done
      if [ -n "$target" ]; then
        echo "${indent}set \$resolved_$name $target;"
        echo "${indent}grpc_pass grpc://\$resolved_$name;"
      else
        printf '%s\n' "$line"
      fi ;;
    "keepalive "*) [ -n "$upstream" ] || printf '%s\n' "$line" ;;  # no pool to keep
    *) printf '%s\n' "$line" ;;
  esac
done < "$src" > "$conf"

nginx -c "$conf" -t -q
exec nginx -c "$conf" -g 'daemon off;'
