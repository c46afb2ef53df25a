#!/usr/bin/env bash
# Builds the Go example client offline with Debian's packages: protoc (protobuf-compiler, with the
# well-known types of libprotobuf-dev), protoc-gen-go (protoc-gen-go), protoc-gen-go-grpc (built here from
# golang-google-grpc-dev's source) and the Go libraries under /usr/share/gocode (golang-google-grpc-dev,
# golang-google-protobuf-dev, and golang-github-golang-protobuf-1-5-dev: without it grpc 1.33's code
# links an older github.com/golang/protobuf and panics at start).
#
#   ./build.sh OUT_DIR      → OUT_DIR/carbonmon-go-example
#
# The stubs go to OUT_DIR/gopath/src/<go_package> (github.com/carbonmon/carbonmon/gen/go/...), and the
# build runs in GOPATH mode (GO111MODULE=off) with GOPATH=OUT_DIR/gopath:/usr/share/gocode: no network.
# With network and modules instead: generate with paths=source_relative into your module and
# `go get google.golang.org/grpc google.golang.org/protobuf`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto_root=$(cd "$here/../../proto" && pwd)
out=$(mkdir -p "${1:?usage: build.sh OUT_DIR}" && cd "$1" && pwd)
gocode=${GOCODE:-/usr/share/gocode}
include=${PROTOC_INCLUDE:-/usr/include}

for tool in protoc protoc-gen-go go; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool not found (apt-get install protobuf-compiler protoc-gen-go golang-go)" >&2; exit 1; }
done
[ -d "$gocode/src/google.golang.org/grpc" ] || { echo "build.sh: no grpc under $gocode (apt-get install golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev)" >&2; exit 1; }
[ -f "$include/google/protobuf/timestamp.proto" ] || { echo "build.sh: google/protobuf/timestamp.proto not under $include (apt-get install libprotobuf-dev)" >&2; exit 1; }

export GO111MODULE=off GOFLAGS= GOPATH="$out/gopath:$gocode" GOCACHE="${GOCACHE:-$out/gocache}"
mkdir -p "$out/bin" "$out/gopath/src"
if [ ! -x "$out/bin/protoc-gen-go-grpc" ]; then
  go build -o "$out/bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
fi

mapfile -t protos < <(cd "$proto_root" && find carbonmon -name '*.proto' | sort)
PATH="$out/bin:$PATH" protoc -I "$proto_root" -I "$include" \
  --go_out="$out/gopath/src" --go-grpc_out="$out/gopath/src" "${protos[@]}"

(cd "$here" && go build -o "$out/carbonmon-go-example" .)
echo "built $out/carbonmon-go-example from ${#protos[@]} protos"
