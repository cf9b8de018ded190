#!/usr/bin/env bash
# Fails if any OpenSSL-only pki target depends (transitively) on gRPC.
set -euo pipefail
deps="$1"
grep -q "//pki:join_token" "$deps" || { echo "FAIL: query output looks empty"; exit 1; }
if grep -E "//third_party/system:grpc|//proto:(ca|control|dispatcher|logs|raft_service|node_control)$" "$deps"; then
  echo "FAIL: an OpenSSL-only pki target depends on gRPC (see above)"
  exit 1
fi
echo "OK: $(wc -l < "$deps") dependencies, none on gRPC"
