/// A cursor over internal keys in order (memtable, table, level, merge of those).
/// `key` and `value` are valid until the next positioning call.
protocol InternalIterator: AnyObject {
    var isValid: Bool { get }
    /// The internal key (user key + 8-byte trailer) at the current position.
    var key: UnsafeRawBufferPointer { get }
    var value: UnsafeRawBufferPointer { get }
    func seekToFirst() throws
    func seekToLast() throws
    /// Positions at the first entry >= target.
    func seek(_ target: UnsafeRawBufferPointer) throws
    /// Positions at the last entry < target.
    func seekBefore(_ target: UnsafeRawBufferPointer) throws
    func next() throws
    func prev() throws
}
