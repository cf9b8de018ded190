#!/usr/bin/env bash
# Fails if a dependency list (a genquery output) names an I/O library a pure core must not use.
set -euo pipefail
deps="$1"
[ -s "$deps" ] || { echo "FAIL: empty dependency list $deps"; exit 1; }
forbidden='//third_party/system:(grpc|rocksdb|openssl|boost_asio)$|//proto:[a-z_]*(service|control|dispatcher|ca|logs|node_control)$'
if grep -E "$forbidden" "$deps"; then
  echo "FAIL: the pure core depends on the targets above"
  exit 1
fi
echo "ok: $(wc -l < "$deps") dependencies, none forbidden"
