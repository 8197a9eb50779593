#!/bin/sh
# The container's start command. With no arguments, or only options, it runs the service's CLI
# (`python -m service [--host H] [--port P] [--workers W]`), which reads every other setting
# from AESERVE_* variables; any other command runs as given (e.g. `sh` for a look around).
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    # exec: the server replaces this shell, so `docker stop`'s SIGTERM reaches it directly.
    exec python -m service "$@"
fi
exec "$@"
