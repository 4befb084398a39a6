// The rocksdb_* functions of RocksDB's C API that the rocksdb engine calls, as trampolines
// that jump through pointers filled by rusd_rocksdb_load (see RocksDBLoader.h). The engine's
// Swift code calls the C API by its usual names, declared by <rocksdb/c.h> (module CRocksDB);
// the linker binds those names to the trampolines below instead of to librocksdb.so.
// A function the engine starts to call must be added to ROCKSDB_FUNCTIONS: until it is, the
// link fails with an undefined symbol, never at run time.
#define _GNU_SOURCE
#include "RocksDBLoader.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define ROCKSDB_FUNCTIONS(X) \
    X(rocksdb_block_based_options_create) \
    X(rocksdb_block_based_options_destroy) \
    X(rocksdb_block_based_options_set_block_cache) \
    X(rocksdb_block_based_options_set_block_size) \
    X(rocksdb_block_based_options_set_cache_index_and_filter_blocks) \
    X(rocksdb_block_based_options_set_filter_policy) \
    X(rocksdb_block_based_options_set_format_version) \
    X(rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache) \
    X(rocksdb_cache_create_lru) \
    X(rocksdb_cache_destroy) \
    X(rocksdb_close) \
    X(rocksdb_compact_range_opt) \
    X(rocksdb_compactoptions_create) \
    X(rocksdb_compactoptions_destroy) \
    X(rocksdb_compactoptions_set_bottommost_level_compaction) \
    X(rocksdb_compactoptions_set_exclusive_manual_compaction) \
    X(rocksdb_create_iterator) \
    X(rocksdb_create_snapshot) \
    X(rocksdb_filterpolicy_create_bloom_full) \
    X(rocksdb_flush_wal) \
    X(rocksdb_free) \
    X(rocksdb_get_pinned) \
    X(rocksdb_iter_destroy) \
    X(rocksdb_iter_get_error) \
    X(rocksdb_iter_key) \
    X(rocksdb_iter_next) \
    X(rocksdb_iter_prev) \
    X(rocksdb_iter_seek_to_first) \
    X(rocksdb_iter_seek_to_last) \
    X(rocksdb_iter_valid) \
    X(rocksdb_iter_value) \
    X(rocksdb_open) \
    X(rocksdb_options_create) \
    X(rocksdb_options_destroy) \
    X(rocksdb_options_enable_statistics) \
    X(rocksdb_options_increase_parallelism) \
    X(rocksdb_options_set_blob_cache) \
    X(rocksdb_options_set_blob_compression_type) \
    X(rocksdb_options_set_blob_gc_age_cutoff) \
    X(rocksdb_options_set_block_based_table_factory) \
    X(rocksdb_options_set_bottommost_compression) \
    X(rocksdb_options_set_bytes_per_sync) \
    X(rocksdb_options_set_compaction_style) \
    X(rocksdb_options_set_compression) \
    X(rocksdb_options_set_create_if_missing) \
    X(rocksdb_options_set_enable_blob_files) \
    X(rocksdb_options_set_enable_blob_gc) \
    X(rocksdb_options_set_keep_log_file_num) \
    X(rocksdb_options_set_level_compaction_dynamic_level_bytes) \
    X(rocksdb_options_set_max_background_jobs) \
    X(rocksdb_options_set_max_bytes_for_level_base) \
    X(rocksdb_options_set_max_log_file_size) \
    X(rocksdb_options_set_max_write_buffer_number) \
    X(rocksdb_options_set_min_blob_size) \
    X(rocksdb_options_set_paranoid_checks) \
    X(rocksdb_options_set_skip_stats_update_on_db_open) \
    X(rocksdb_options_set_target_file_size_base) \
    X(rocksdb_options_set_wal_recovery_mode) \
    X(rocksdb_options_set_write_buffer_size) \
    X(rocksdb_options_statistics_get_string) \
    X(rocksdb_pinnableslice_destroy) \
    X(rocksdb_pinnableslice_value) \
    X(rocksdb_property_value) \
    X(rocksdb_readoptions_create) \
    X(rocksdb_readoptions_destroy) \
    X(rocksdb_readoptions_set_iterate_lower_bound) \
    X(rocksdb_readoptions_set_iterate_upper_bound) \
    X(rocksdb_readoptions_set_snapshot) \
    X(rocksdb_readoptions_set_verify_checksums) \
    X(rocksdb_release_snapshot) \
    X(rocksdb_set_options) \
    X(rocksdb_write) \
    X(rocksdb_writebatch_create) \
    X(rocksdb_writebatch_delete) \
    X(rocksdb_writebatch_destroy) \
    X(rocksdb_writebatch_put) \
    X(rocksdb_writeoptions_create) \
    X(rocksdb_writeoptions_destroy) \
    X(rocksdb_writeoptions_set_sync) \

/// One pointer per function, hidden so that the trampolines reach it PC-relative.
#define DECLARE_POINTER(name) __attribute__((visibility("hidden"))) void *rusd_rocksdb_fn_##name;
ROCKSDB_FUNCTIONS(DECLARE_POINTER)

#if defined(__x86_64__)
#define TRAMPOLINE(name)                                                  \
    __asm__(".text\n.globl " #name "\n.type " #name ", @function\n"       \
            ".p2align 4\n" #name ":\n"                                    \
            "\tjmp *rusd_rocksdb_fn_" #name "(%rip)\n"                    \
            ".size " #name ", .-" #name "\n");
#elif defined(__aarch64__)
#define TRAMPOLINE(name)                                                  \
    __asm__(".text\n.globl " #name "\n.type " #name ", %function\n"       \
            ".p2align 2\n" #name ":\n"                                    \
            "\tadrp x16, rusd_rocksdb_fn_" #name "\n"                     \
            "\tldr x16, [x16, :lo12:rusd_rocksdb_fn_" #name "]\n"         \
            "\tbr x16\n"                                                  \
            ".size " #name ", .-" #name "\n");
#else
#error "rocksdb engine loader: trampolines are written for x86_64 and aarch64 only"
#endif
ROCKSDB_FUNCTIONS(TRAMPOLINE)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char failure[512];
static int loaded = -1;

static void load(void) {
    // The soname of Debian 12's librocksdb-dev (7.8), then whatever the unversioned name is.
    const char *names[] = {"librocksdb.so.7.8", "librocksdb.so"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && handle == NULL; i++) {
        handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (handle == NULL) {
        const char *why = dlerror();
        snprintf(failure, sizeof failure, "cannot load librocksdb (install Debian's librocksdb7.8): %s",
                 why ? why : "not found");
        return;
    }
#define BIND(name)                                                                          \
    rusd_rocksdb_fn_##name = dlsym(handle, #name);                                          \
    if (rusd_rocksdb_fn_##name == NULL) {                                                   \
        snprintf(failure, sizeof failure, "librocksdb has no function %s (version too old?)", #name); \
        return;                                                                             \
    }
    ROCKSDB_FUNCTIONS(BIND)
    loaded = 0;
}

int rusd_rocksdb_load(char *error, int capacity) {
    pthread_once(&once, load);
    if (loaded != 0 && error != NULL && capacity > 0) {
        snprintf(error, (size_t)capacity, "%s", failure);
    }
    return loaded;
}
