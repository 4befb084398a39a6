import EngineAPI

/// Which files in a directory belong to a RocksDB store, so that `open` refuses another
/// engine's data instead of creating a store beside it (or, worse, opening LevelDB's files,
/// whose names RocksDB shares).
///
/// RocksDB creates a store in this order: LOCK and LOG, IDENTITY (written to a temporary file
/// and renamed), MANIFEST-000001, then CURRENT (again through a temporary `.dbtmp`); only then
/// the WAL (`NNNNNN.log`) and the OPTIONS file. So:
/// - without CURRENT, only what a creation cut short leaves behind may be present;
/// - with CURRENT, IDENTITY must be present (LevelDB never writes one) and every file must be
///   one RocksDB writes.
enum RocksDBStoreFiles {
    /// Files a store creation interrupted before CURRENT may leave.
    static func isLeftOfCreation(_ name: String) -> Bool {
        name == "LOCK" || name == "LOG" || name.hasPrefix("LOG.old.") || name == "IDENTITY"
            || name.hasPrefix("MANIFEST-") || name.hasSuffix(".dbtmp")
    }

    /// Files RocksDB writes in a store directory configured as this engine configures it.
    static func isStoreFile(_ name: String) -> Bool {
        isLeftOfCreation(name) || name == "CURRENT" || name.hasPrefix("OPTIONS-")
            || name.hasSuffix(".log") || name.hasSuffix(".sst") || name.hasSuffix(".blob")
    }

    /// Throws `.invalidArgument` when `names` (a directory listing) is not a RocksDB store, or
    /// a creation of one cut short.
    static func checkOwnership(directory: String, names: [String]) throws {
        let hasCurrent = names.contains("CURRENT")
        if !hasCurrent, let foreign = names.first(where: { !isLeftOfCreation($0) }) {
            throw EngineError(.invalidArgument, engine: RocksDBEngine.engineName, path: directory, operation: "open",
                              message: "the directory holds files that are not a RocksDB store, or one that lost its CURRENT file (\(foreign)); refusing to create a new store over them")
        }
        guard hasCurrent else { return }
        if !names.contains("IDENTITY") {
            throw EngineError(.invalidArgument, engine: RocksDBEngine.engineName, path: directory, operation: "open",
                              message: "the directory has CURRENT but no IDENTITY file: another engine's store (LevelDB's?) or a RocksDB store that lost a file; refusing to open it")
        }
        if let foreign = names.first(where: { !isStoreFile($0) }) {
            throw EngineError(.invalidArgument, engine: RocksDBEngine.engineName, path: directory, operation: "open",
                              message: "the directory holds a file RocksDB never writes (\(foreign)): not a RocksDB store; refusing to open it")
        }
    }

    /// Bytes the store takes on disk: each file's allocated size, except that WAL and MANIFEST
    /// files count what was written to them (rounded up to 4 KiB). RocksDB preallocates those
    /// (fallocate, keeping the file size): 1.1 x the write buffer per WAL, 4 MiB per MANIFEST,
    /// ~22 MiB for an empty store, which would otherwise count against `maxSizeBytes` and
    /// etcd's quota before any data was written.
    static func diskBytes(_ files: [FileEntry]) -> UInt64 {
        files.reduce(0) { total, file in
            let preallocated = file.name.hasSuffix(".log") || file.name.hasPrefix("MANIFEST-")
            let written = (file.size &+ 4095) / 4096 &* 4096
            return total &+ (preallocated ? min(file.allocated, written) : file.allocated)
        }
    }
}
