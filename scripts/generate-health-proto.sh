#!/usr/bin/env bash
# Regenerates the swift-protobuf code owned by the transport:
#   Protos/grpc/health/v1/health.proto -> Sources/GRPCTransport/Generated/
#   Tests/compat/transport_test.proto  -> Sources/grpc-test-server/Generated/
# Needs protoc and protoc-gen-swift (PROTOC_GEN_SWIFT, default: on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || echo /work/protogen/.build/release/protoc-gen-swift)}"
protoc --plugin=protoc-gen-swift="$plugin" -I Protos \
  --swift_out=Sources/GRPCTransport/Generated --swift_opt=Visibility=Public \
  grpc/health/v1/health.proto
protoc --plugin=protoc-gen-swift="$plugin" -I Tests/compat \
  --swift_out=Sources/grpc-test-server/Generated \
  transport_test.proto
