#!/usr/bin/env bash
# Regenerates Sources/EtcdProto from Protos/ (etcd's wire contract, see Protos/*/*.proto).
#
# Needs `protoc` (Debian protobuf-compiler) and protoc-gen-swift of the swift-protobuf version in
# Package.swift. Set PROTOC_GEN_SWIFT to the plugin's path; otherwise the script builds one in a
# scratch package (swift build -c release --product protoc-gen-swift) under .build-protogen/ and
# uses that. The generated code is committed; run this only after editing Protos/.
set -euo pipefail
cd "$(dirname "$0")/.."

plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$plugin" ]]; then
    scratch=".build-protogen"
    if [[ ! -x "$scratch/.build/release/protoc-gen-swift" ]]; then
        version="$(sed -n 's|.*swift-protobuf", from: "\([0-9.]*\)".*|\1|p' Package.swift)"
        mkdir -p "$scratch"
        cat > "$scratch/Package.swift" <<PKG
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "protogen",
    dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "$version")]
)
PKG
        (cd "$scratch" && swift build -c release --product protoc-gen-swift)
    fi
    plugin="$scratch/.build/release/protoc-gen-swift"
fi

out="Sources/EtcdProto"
find "$out" -name '*.pb.swift' -delete
protoc --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" \
    -I Protos \
    Protos/mvccpb/kv.proto Protos/authpb/auth.proto Protos/etcdserverpb/rpc.proto
echo "generated: $(ls "$out"/*.pb.swift | tr '\n' ' ')"
