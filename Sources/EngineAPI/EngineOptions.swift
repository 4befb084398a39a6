/// Options for opening an engine. Engines ignore what does not apply to them, and say so in
/// their documentation.
public struct EngineOptions: Sendable, Hashable {
    /// Create the directory and an empty store when missing; otherwise opening a missing store
    /// throws `.notFound`.
    public var createIfMissing: Bool = true

    /// Upper bound on the store's size on disk in bytes (nil: unbounded). LMDB grows its map up
    /// to this size and then reports `.full`; other engines report `.full` when a write would
    /// take them past it.
    public var maxSizeBytes: UInt64? = nil

    /// Memory for caching blocks the engine reads (LevelDB block cache). LMDB and LSM map their
    /// files and rely on the kernel page cache instead, so they ignore it.
    public var cacheBytes: Int = 64 << 20

    /// Memory buffered before a flush to sorted files (LevelDB write buffer, LSM memtable).
    public var writeBufferBytes: Int = 16 << 20

    /// Verify checksums on every read where the engine supports it.
    public var paranoidChecks: Bool = true

    public init() {}
}
