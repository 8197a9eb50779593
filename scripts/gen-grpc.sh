#!/usr/bin/env bash
# Compile service/http/grpc/proto/oip.proto into the descriptor set the service loads
# (oip.binpb, committed): grpcio-tools' protoc, a dev dependency; the runtime needs only
# grpcio and protobuf. tests/service/test_grpc.py fails while the committed file is stale.
set -euo pipefail
cd "$(dirname "$0")/../service/http/grpc/proto"
"${PYTHON:-python}" -m grpc_tools.protoc -I. --descriptor_set_out=oip.binpb oip.proto
