/// An ordered list of puts and deletes applied atomically by `StorageEngine.write`.
/// Later operations on the same key win. A value type: build it, then hand it over.
public struct WriteBatch: Sendable, Hashable {
    public enum Operation: Sendable, Hashable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])

        public var key: [UInt8] {
            switch self {
            case .put(let key, _), .delete(let key): return key
            }
        }
    }

    public private(set) var operations: [Operation] = []
    /// Sum of key and value sizes, for size limits and accounting.
    public private(set) var byteCount: Int = 0

    public init() {}

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        operations.append(.put(key: key, value: value))
        byteCount += key.count + value.count
    }

    public mutating func delete(_ key: [UInt8]) {
        operations.append(.delete(key: key))
        byteCount += key.count
    }

    /// Appends every operation of `other`, in order.
    public mutating func append(contentsOf other: WriteBatch) {
        operations.append(contentsOf: other.operations)
        byteCount += other.byteCount
    }

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }
}
