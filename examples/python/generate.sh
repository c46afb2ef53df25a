#!/usr/bin/env bash
# Generates the Python messages and gRPC stubs for carbonmon's contract (../../proto) into ./gen, or into
# the directory given as the first argument, as importable packages:
#
#   from carbonmon.agent.v1 import agent_pb2, agent_pb2_grpc
#   from carbonmon.intensity.v1 import intensity_pb2, intensity_pb2_grpc
#
# Needs protoc, the gRPC Python plugin and the well-known types (google/protobuf/*.proto). On Debian/Ubuntu:
#   apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-grpcio
# Override the tools with PROTOC, GRPC_PYTHON_PLUGIN and PROTOC_INCLUDE (the directory holding google/).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto_root=$(cd "$here/../../proto" && pwd)
out=${1:-$here/gen}
protoc=${PROTOC:-/usr/bin/protoc}
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}

[ -x "$protoc" ] || { echo "generate.sh: protoc not found at $protoc (apt-get install protobuf-compiler, or set PROTOC)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "generate.sh: grpc_python_plugin not found at $plugin (apt-get install protobuf-compiler-grpc, or set GRPC_PYTHON_PLUGIN)" >&2; exit 1; }

# The well-known types (timestamp.proto, duration.proto) that the contract imports.
include=${PROTOC_INCLUDE:-}
if [ -z "$include" ]; then
  for dir in /usr/include /usr/local/include "$(dirname "$(dirname "$protoc")")/include"; do
    if [ -f "$dir/google/protobuf/timestamp.proto" ]; then include=$dir; break; fi
  done
fi
if [ -z "$include" ] || [ ! -f "$include/google/protobuf/timestamp.proto" ]; then
  echo "generate.sh: google/protobuf/timestamp.proto not found (apt-get install libprotobuf-dev, or set PROTOC_INCLUDE)" >&2
  exit 1
fi

mapfile -t protos < <(cd "$proto_root" && find carbonmon -name '*.proto' | sort)
[ ${#protos[@]} -gt 0 ] || { echo "generate.sh: no .proto files under $proto_root" >&2; exit 1; }

# Generate into a fresh directory next to the target, then swap it in: a half-written tree is never used.
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$protoc" -I "$proto_root" -I "$include" \
  --python_out="$tmp" --grpc_out="$tmp" --plugin=protoc-gen-grpc="$plugin" \
  "${protos[@]}"

# Regular packages (not namespace packages) for every generated directory.
find "$tmp" -mindepth 1 -type d -exec touch {}/__init__.py \;

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated ${#protos[@]} protos into $out"
