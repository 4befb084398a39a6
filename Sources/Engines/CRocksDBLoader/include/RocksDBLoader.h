#ifndef RUSD_ROCKSDB_LOADER_H
#define RUSD_ROCKSDB_LOADER_H

/// Loads librocksdb (dlopen) on first call and binds every rocksdb_* function the rocksdb
/// engine calls. Until it has returned 0, calling any rocksdb_* function is undefined: the
/// engine calls it before its first RocksDB call. Thread-safe; later calls return the first
/// call's result. On failure returns -1 and writes a NUL-terminated reason into `error`.
///
/// Why: linking librocksdb made every rusd process map, relocate and run the static
/// initializers of a 9 MB C++ library: about 6.5 MB more resident memory whatever the engine.
/// Loaded on demand, only `--engine=rocksdb` pays for it.
int rusd_rocksdb_load(char *error, int capacity);

#endif
