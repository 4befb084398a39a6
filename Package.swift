// swift-tools-version:6.1
//
// rusd: an etcd v3 compatible server with pluggable storage engines.
// The folder tree shows the boundaries:
//   Sources/EngineAPI      the engine interface + shared conformance checks (no dependencies)
//   Sources/Engines        one folder per engine (LMDB, LevelDB, LSM) + C module maps + the registry
//   Sources/CNghttp2       C module map for libnghttp2
//   Sources/GRPCTransport  gRPC over libnghttp2 + SwiftNIO; knows nothing of etcd
//   Sources/EtcdProto      generated swift-protobuf code for etcd's API (scripts/generate-protos.sh)
//   Sources/Server         MVCC store, etcd server state machine, gRPC services, the rusd executable
//   Sources/rusd-compare   the benchmark tool
import PackageDescription

/// Servers link the Swift runtime and Foundation statically: ~2-4 MB less resident memory per
/// process (no relocated shared-library pages; measured in Sources/GRPCTransport/README.md) and
/// no Swift runtime needed on the host. The `-l` flags name the static archives that
/// `-static-stdlib` leaves out when modules were compiled against the shared ones (order matters).
/// Linked by lld without `-export-dynamic` (which `-static-stdlib` turns on): nothing loads
/// plugins that would bind to our symbols, and exporting ~50,000 of them made every start read
/// 5 MB of .dynsym/.dynstr/.gnu.hash and apply 120,000 symbolic relocations. What relocations
/// remain are relative, packed as DT_RELR (`-z pack-relative-relocs`, glibc 2.36+): 2.8 MB of
/// .rela.dyn become 40 KB. Together -5 MB of resident memory in rusd (README, "Memory and binary").
let staticSwiftRuntime: [LinkerSetting] = [.unsafeFlags([
    "-static-stdlib", "-lFoundationInternationalization", "-lCoreFoundation", "-l_FoundationICU",
    "-l_FoundationCollections", "-l_FoundationCShims",
    "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
])]

/// rusd links FoundationEssentials but not the rest of Foundation (Foundation, CoreFoundation,
/// FoundationInternationalization, ICU: ~50 MB of binary, 3 MB resident). swift-crypto imports
/// Foundation, so `-lFoundation` is on the link line ahead of FoundationEssentials, and lld took
/// generic specializations that both define from Foundation's archive, dragging in the rest.
/// Mapping those archives to an empty input keeps them out, and fails the link with an
/// undefined symbol if code really needs them (use FoundationEssentials APIs instead).
let withoutFullFoundation: [LinkerSetting] = [.unsafeFlags([
    "-Xlinker", "--remap-inputs=*/libFoundation.a=/dev/null",
    "-Xlinker", "--remap-inputs=*/libFoundationInternationalization.a=/dev/null",
    "-Xlinker", "--remap-inputs=*/libCoreFoundation.a=/dev/null",
    "-Xlinker", "--remap-inputs=*/lib_FoundationICU.a=/dev/null",
])]

/// rusd's hot functions and data first, in the order a running rusd first touches them
/// (Sources/Server/rusd/link-order.txt, made by scripts/generate-rusd-link-order.sh). A fault on
/// the binary maps the whole page-cache folio around it, so resident memory follows how many
/// places are touched; clustered, they share pages (-3 MiB). Stale names are skipped.
let hotCodeFirst: [LinkerSetting] = [.unsafeFlags([
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/Server/rusd/link-order.txt",
    "-Xlinker", "--no-warn-symbol-ordering",
])]

let package = Package(
    name: "rusd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rusd", targets: ["rusd"]),
        .executable(name: "rusd-compare", targets: ["rusd-compare"]),
        .library(name: "EngineAPI", targets: ["EngineAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // Without the default BinaryDelimitedStreams trait (unused): it imports all of Foundation
        // (with ICU), ~6 MB of resident pages in every process; the rest needs only FoundationEssentials.
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0", traits: ["FieldMaskUtilities"]),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // rusd --auto-tls: self-signed certificate generation only.
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        // 4.x: jwt-kit needs it (the 3.x API rusd uses is unchanged).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.1.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // --auth-token jwt,...: JWT signing and verification (RS/PS/ES/HS), keys from PEM.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        // rusd --shared-log (cluster mode): the PostgreSQL client of Sources/Server/ClusterLog.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // The lmdb engine's pending writes: a persistent hash trie (TreeDictionary).
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // MARK: Engine boundary
        .target(name: "EngineAPI", path: "Sources/EngineAPI"),
        .systemLibrary(name: "CLMDB", path: "Sources/Engines/CLMDB", pkgConfig: "lmdb",
                       providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CLevelDB", path: "Sources/Engines/CLevelDB",
                       providers: [.apt(["libleveldb-dev"])]),
        .target(name: "LMDBEngine", dependencies: ["EngineAPI", "CLMDB",
                                                .product(name: "HashTreeCollections", package: "swift-collections")],
                path: "Sources/Engines/LMDB"),
        .target(name: "LevelDBEngine", dependencies: ["EngineAPI", "CLevelDB"], path: "Sources/Engines/LevelDB"),
        // RocksDB's C API declarations only; librocksdb is loaded on first use (CRocksDBLoader:
        // linked, it cost every rusd ~6.5 MB of resident memory whatever the engine).
        .systemLibrary(name: "CRocksDB", path: "Sources/Engines/CRocksDB",
                       providers: [.apt(["librocksdb-dev"])]),
        .target(name: "CRocksDBLoader", path: "Sources/Engines/CRocksDBLoader",
                linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "RocksDBEngine", dependencies: ["EngineAPI", "CRocksDB", "CRocksDBLoader"], path: "Sources/Engines/RocksDB",
                exclude: ["README.md"]),
        .systemLibrary(name: "CSQLite", path: "Sources/Engines/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "SQLiteEngine", dependencies: ["EngineAPI", "CSQLite"], path: "Sources/Engines/SQLite",
                exclude: ["README.md"]),
        .target(name: "LSMEngine", dependencies: ["EngineAPI"], path: "Sources/Engines/LSM"),
        .target(name: "Engines", dependencies: ["EngineAPI", "LMDBEngine", "LevelDBEngine", "RocksDBEngine", "SQLiteEngine", "LSMEngine"],
                path: "Sources/Engines/Registry"),
        // Child process for the conformance suite's hard-kill durability test.
        .executableTarget(name: "engine-kill-writer", dependencies: ["EngineAPI", "Engines"],
                          path: "Sources/engine-kill-writer"),

        // MARK: API boundary (transport)
        .systemLibrary(name: "CNghttp2", path: "Sources/CNghttp2", pkgConfig: "libnghttp2",
                       providers: [.apt(["libnghttp2-dev"])]),
        .target(name: "GRPCTransport", dependencies: [
            "CNghttp2",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Sources/GRPCTransport", exclude: ["README.md"]),
        // Echo server for the transport's compatibility tests (Tests/compat/test_transport.py).
        .executableTarget(name: "grpc-test-server", dependencies: [
            "GRPCTransport",
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Sources/grpc-test-server", linkerSettings: staticSwiftRuntime),
        .target(name: "EtcdProto", dependencies: [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Sources/EtcdProto"),

        // MARK: MVCC boundary and the server
        // Auth state, password hashing (bcrypt via libxcrypt) and tokens; no gRPC, no store.
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt", providers: [.apt(["libcrypt-dev"])]),
        // Tokens: simple, or JWT through jwt-kit (--auth-token jwt,...).
        .target(name: "Auth", dependencies: [
            "CCrypt",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/Server/Auth"),
        .target(name: "MVCC", dependencies: ["EngineAPI"], path: "Sources/Server/MVCC", exclude: ["README.md"]),
        .target(name: "WatchHub", dependencies: ["MVCC"], path: "Sources/Server/Watch"),
        // Snapshots in etcd's format: the bbolt file format (no dependencies, knows nothing of
        // etcd), and etcd 3.4's buckets and records mapped to and from the store.
        .target(name: "BBolt", path: "Sources/Server/Snapshot/BBolt"),
        .target(name: "EtcdSnapshot", dependencies: [
            "BBolt", "MVCC", "EngineAPI", "Auth", "EtcdProto",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/Server/Snapshot/EtcdSnapshot"),
        .target(name: "EtcdServer", dependencies: [
            "EngineAPI", "MVCC", "EtcdProto", "Auth",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/Server/EtcdServer", exclude: ["README.md"]),
        .target(name: "EtcdAPI", dependencies: [
            "EtcdServer", "EtcdProto", "GRPCTransport", "MVCC", "EngineAPI", "Auth", "WatchHub", "EtcdSnapshot",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/Server/API"),
        // Cluster mode: the log of writes kept in PostgreSQL, fed to EtcdServer's applier by
        // every member (docs/cluster.md). EtcdServer knows only its ReplicatedLog protocol.
        .target(name: "ClusterLog", dependencies: [
            "EtcdServer", "EtcdProto", "Auth",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Sources/Server/ClusterLog"),
        .executableTarget(name: "rusd", dependencies: [
            "ClusterLog",
            "Engines", "EtcdServer", "EtcdAPI", "GRPCTransport", "MVCC", "WatchHub", "EtcdSnapshot", "Auth",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ], path: "Sources/Server/rusd", exclude: ["link-order.txt"],
        // Not `withoutFullFoundation` while ClusterLog links postgres-nio: it needs all of
        // Foundation (NIOFoundationCompat's RunLoop and JSONSerialization, String(format:) and
        // replacingOccurrences in its SCRAM and data code), so ICU comes along (docs/cluster.md).
        linkerSettings: staticSwiftRuntime + hotCodeFirst),
        .executableTarget(name: "rusd-compare", dependencies: [
            "EtcdProto", "GRPCTransport", "EngineAPI", "Engines",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Sources/rusd-compare"),

        // MARK: Tests
        .testTarget(name: "EngineTests", dependencies: ["EngineAPI", "Engines", "LMDBEngine", "LevelDBEngine"],
                    path: "Tests/EngineTests"),
        .testTarget(name: "LSMTests", dependencies: ["EngineAPI", "LSMEngine"], path: "Tests/LSMTests"),
        .testTarget(name: "GRPCTransportTests", dependencies: [
            "GRPCTransport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], path: "Tests/GRPCTransportTests"),
        // In-memory StorageEngine for the MVCC and server unit tests.
        .target(name: "InMemoryEngine", dependencies: ["EngineAPI"], path: "Tests/InMemoryEngine"),
        .testTarget(name: "AuthTests", dependencies: ["Auth", .product(name: "Crypto", package: "swift-crypto")],
                    path: "Tests/AuthTests"),
        .testTarget(name: "BBoltTests", dependencies: ["BBolt"], path: "Tests/BBoltTests"),
        .testTarget(name: "MVCCTests", dependencies: ["MVCC", "Engines", "InMemoryEngine"], path: "Tests/MVCCTests"),
        .testTarget(name: "WatchTests", dependencies: ["WatchHub", "MVCC", "InMemoryEngine"], path: "Tests/WatchTests"),
        // Fuzz targets, replayed over the committed corpus by FuzzReplayTests: file formats and
        // markers (Tests/Fuzz/Targets), and those that drive an EtcdServer (Tests/Fuzz/ServerTargets).
        // The libFuzzer driver is added below only when RUSD_FUZZ is set (scripts/fuzz.sh).
        .target(name: "FuzzTargets", dependencies: ["EngineAPI", "LSMEngine", "LMDBEngine", "BBolt"],
                path: "Tests/Fuzz/Targets"),
        .target(name: "ServerFuzzTargets", dependencies: [
            "FuzzTargets", "EtcdServer", "EtcdProto", "InMemoryEngine", "EtcdAPI", "GRPCTransport",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ], path: "Tests/Fuzz/ServerTargets"),
        .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzTargets", "ServerFuzzTargets", "EngineAPI", "LSMEngine", "LMDBEngine"],
                    path: "Tests/FuzzReplayTests"),
        .testTarget(name: "ServerTests", dependencies: [
            "EtcdServer", "EtcdAPI", "MVCC", "Engines", "InMemoryEngine", "EtcdSnapshot",
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ], path: "Tests/ServerTests"),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer driver: only in the package when RUSD_FUZZ is set, so that `swift build` and
// `swift test` never see it. scripts/fuzz.sh builds it with coverage instrumentation and the
// address sanitizer into .build-fuzz and links libFuzzer without its main (FuzzMain.swift).
// RUSD_FUZZ=files (fuzz.sh --ci) links the file-format targets alone, without the server.
if let fuzz = Context.environment["RUSD_FUZZ"] {
    let filesOnly = fuzz == "files"
    let targets: Target.Dependency = filesOnly ? "FuzzTargets" : "ServerFuzzTargets"
    var settings: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]
    if filesOnly { settings.append(.define("RUSD_FUZZ_FILE_FORMATS_ONLY")) }
    package.targets.append(.executableTarget(name: "rusd-fuzz", dependencies: [targets], path: "Tests/Fuzz/Main",
                                             swiftSettings: settings))
}
