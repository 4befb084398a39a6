import CRocksDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// The C option objects of one open database, configured as production deployments run
/// RocksDB (README.md in this folder gives the reasons and the sources). Created before
/// `rocksdb_open`, destroyed only after `rocksdb_close`: the statistics object read by
/// `statisticsText()` hangs off `options`.
///
/// Ownership in RocksDB's C API: the table factory copies `tableOptions` (destroyed here right
/// after use); `tableOptions` takes ownership of the filter policy (never destroyed here);
/// options and table options hold shared references to the cache, so our handle to it is
/// destroyed independently.
final class RocksDBSettings: @unchecked Sendable {
    /// Values at or above this size go to blob files (key-value separation): 4 KiB.
    static let minBlobSize: UInt64 = 4 << 10
    /// Blob GC during normal compactions relocates the live blobs of the oldest quarter of
    /// blob files (RocksDB's default); `reclaimSpace` raises it to 1.0 for its duration.
    static let blobGarbageCollectionAgeCutoff = 0.25
    static let blockSize = 16 << 10
    static let bloomBitsPerKey = 10.0
    /// Info LOG files kept (LOG + LOG.old.*) and the size at which LOG is rolled.
    static let keptInfoLogs = 5
    static let infoLogBytes = 8 << 20

    let options: OpaquePointer
    let cache: OpaquePointer
    let readOptions: OpaquePointer
    let syncWrite: OpaquePointer
    let asyncWrite: OpaquePointer
    let verifyChecksums: Bool

    init(_ engineOptions: EngineOptions, path: String) throws {
        guard let options = rocksdb_options_create(), let cache = rocksdb_cache_create_lru(max(engineOptions.cacheBytes, 1 << 20)),
              let table = rocksdb_block_based_options_create(), let bloom = rocksdb_filterpolicy_create_bloom_full(Self.bloomBitsPerKey),
              let readOptions = rocksdb_readoptions_create(), let syncWrite = rocksdb_writeoptions_create(),
              let asyncWrite = rocksdb_writeoptions_create() else {
            throw RocksDBErrors.allocationFailed("rocksdb_*_create", path: path, operation: "open")
        }
        self.options = options
        self.cache = cache
        self.readOptions = readOptions
        self.syncWrite = syncWrite
        self.asyncWrite = asyncWrite
        verifyChecksums = engineOptions.paranoidChecks

        // Store and recovery.
        rocksdb_options_set_create_if_missing(options, engineOptions.createIfMissing ? 1 : 0)
        rocksdb_options_set_paranoid_checks(options, engineOptions.paranoidChecks ? 1 : 0)
        // Every acknowledged write was synced, so only the record being written at a crash can
        // be torn: tolerate a torn tail, refuse a WAL damaged anywhere else (point-in-time
        // recovery, RocksDB's default, would silently drop every record after the damage).
        rocksdb_options_set_wal_recovery_mode(options, Int32(rocksdb_tolerate_corrupted_tail_records_recovery))
        rocksdb_options_set_keep_log_file_num(options, Self.keptInfoLogs)
        rocksdb_options_set_max_log_file_size(options, Self.infoLogBytes)
        rocksdb_options_set_skip_stats_update_on_db_open(options, 1)
        rocksdb_options_enable_statistics(options)

        // Background work: flushes and compactions on as many threads as there are cores (2..8).
        let cores = Int32(clamping: sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let jobs = min(max(cores, 2), 8)
        rocksdb_options_increase_parallelism(options, jobs)
        rocksdb_options_set_max_background_jobs(options, jobs)
        rocksdb_options_set_bytes_per_sync(options, 1 << 20)

        // Memtables and level compaction with dynamic level sizes.
        let writeBuffer = max(engineOptions.writeBufferBytes, 1 << 20)
        rocksdb_options_set_write_buffer_size(options, writeBuffer)
        rocksdb_options_set_max_write_buffer_number(options, 3)
        rocksdb_options_set_compaction_style(options, Int32(rocksdb_level_compaction))
        rocksdb_options_set_level_compaction_dynamic_level_bytes(options, 1)
        rocksdb_options_set_target_file_size_base(options, UInt64(writeBuffer) * 2)
        rocksdb_options_set_max_bytes_for_level_base(options, UInt64(writeBuffer) * 8)
        rocksdb_options_set_compression(options, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_bottommost_compression(options, Int32(rocksdb_zstd_compression))

        // Block-based tables: 16 KiB blocks, full bloom filters, index and filter blocks in the
        // block cache (bounded memory) with level 0's pinned.
        rocksdb_block_based_options_set_block_size(table, Self.blockSize)
        rocksdb_block_based_options_set_block_cache(table, cache)
        rocksdb_block_based_options_set_filter_policy(table, bloom)
        rocksdb_block_based_options_set_cache_index_and_filter_blocks(table, 1)
        rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(table, 1)
        rocksdb_block_based_options_set_format_version(table, 5)
        rocksdb_options_set_block_based_table_factory(options, table)
        rocksdb_block_based_options_destroy(table)

        // Key-value separation: values of 4 KiB and more in blob files, cached in the same cache.
        rocksdb_options_set_enable_blob_files(options, 1)
        rocksdb_options_set_min_blob_size(options, Self.minBlobSize)
        rocksdb_options_set_blob_compression_type(options, Int32(rocksdb_lz4_compression))
        rocksdb_options_set_enable_blob_gc(options, 1)
        rocksdb_options_set_blob_gc_age_cutoff(options, Self.blobGarbageCollectionAgeCutoff)
        rocksdb_options_set_blob_cache(options, cache)

        rocksdb_readoptions_set_verify_checksums(readOptions, verifyChecksums ? 1 : 0)
        rocksdb_writeoptions_set_sync(syncWrite, 1)
        rocksdb_writeoptions_set_sync(asyncWrite, 0)
    }

    /// Read options for one iterator or snapshot: checksums as configured, optionally a snapshot.
    func makeReadOptions(snapshot: OpaquePointer?, path: String, operation: String) throws -> OpaquePointer {
        guard let readOptions = rocksdb_readoptions_create() else {
            throw RocksDBErrors.allocationFailed("rocksdb_readoptions_create", path: path, operation: operation)
        }
        rocksdb_readoptions_set_verify_checksums(readOptions, verifyChecksums ? 1 : 0)
        if let snapshot { rocksdb_readoptions_set_snapshot(readOptions, snapshot) }
        return readOptions
    }

    /// RocksDB's statistics dump ("rocksdb.wal.bytes COUNT : 123" per ticker), or "".
    func statisticsText() -> String {
        guard let text = rocksdb_options_statistics_get_string(options) else { return "" }
        defer { rocksdb_free(text) }
        return String(cString: text)
    }

    /// Call only after the database was closed (or never opened).
    func destroy() {
        rocksdb_options_destroy(options)
        rocksdb_cache_destroy(cache)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWrite)
        rocksdb_writeoptions_destroy(asyncWrite)
    }
}
