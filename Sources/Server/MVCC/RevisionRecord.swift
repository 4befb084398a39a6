/// The value stored under a revision key: one version of a user key, in a fixed-header binary
/// format so that the start-up scan reads the header without decoding anything else.
///
///     offset  size  field
///     0       1     format byte: 0x01 = put, 0x02 = tombstone (deletion)
///     1       8     create revision      (Int64, little-endian; 0 for a tombstone)
///     9       8     version              (Int64, little-endian; 0 for a tombstone)
///     17      8     lease ID             (Int64, little-endian; 0 for none)
///     25      4     key length K         (UInt32, little-endian)
///     29      K     key
///     29+K    …     value (the rest of the record)
///
/// The mod revision is the record's own revision (its engine key).
struct RevisionRecord {
    static let headerSize = 29
    static let putTag: UInt8 = 0x01
    static let tombstoneTag: UInt8 = 0x02

    static func encodePut(key: [UInt8], value: [UInt8], createRevision: Int64, version: Int64,
                          lease: Int64) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(headerSize + key.count + value.count)
        b.append(putTag)
        b.appendLittleEndian(UInt64(bitPattern: createRevision))
        b.appendLittleEndian(UInt64(bitPattern: version))
        b.appendLittleEndian(UInt64(bitPattern: lease))
        b.appendLittleEndian(UInt32(key.count))
        b.append(contentsOf: key)
        b.append(contentsOf: value)
        return b
    }

    /// `encodePut` / `encodeTombstone` from borrowed bytes (`value` ignored for a tombstone).
    static func encode(isTombstone: Bool, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                       createRevision: Int64, version: Int64, lease: Int64) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(headerSize + key.count + (isTombstone ? 0 : value.count))
        b.append(isTombstone ? tombstoneTag : putTag)
        b.appendLittleEndian(UInt64(bitPattern: isTombstone ? 0 : createRevision))
        b.appendLittleEndian(UInt64(bitPattern: isTombstone ? 0 : version))
        b.appendLittleEndian(UInt64(bitPattern: isTombstone ? 0 : lease))
        b.appendLittleEndian(UInt32(key.count))
        b.append(contentsOf: key)
        if !isTombstone { b.append(contentsOf: value) }
        return b
    }

    static func encodeTombstone(key: [UInt8]) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(headerSize + key.count)
        b.append(tombstoneTag)
        b.appendLittleEndian(UInt64(0))
        b.appendLittleEndian(UInt64(0))
        b.appendLittleEndian(UInt64(0))
        b.appendLittleEndian(UInt32(key.count))
        b.append(contentsOf: key)
        return b
    }

    /// The fixed header of a record, read in place.
    struct Header {
        var isTombstone: Bool
        var createRevision: Int64
        var version: Int64
        var lease: Int64
        var keyLength: Int
    }

    static func parseHeader(_ b: UnsafeRawBufferPointer, revision: Revision) throws(MVCCError) -> Header {
        guard b.count >= headerSize else {
            throw .corruption("revision record \(revision): \(b.count) bytes, shorter than its \(headerSize)-byte header")
        }
        let tag = b[0]
        guard tag == putTag || tag == tombstoneTag else {
            throw .corruption("revision record \(revision): unknown format byte 0x\(String(tag, radix: 16)) at offset 0")
        }
        let keyLength = Int(b.loadLittleEndianUInt32(at: 25))
        guard headerSize + keyLength <= b.count else {
            throw .corruption("revision record \(revision): key length \(keyLength) at offset 25 exceeds the record size \(b.count)")
        }
        return Header(isTombstone: tag == tombstoneTag,
                      createRevision: Int64(bitPattern: b.loadLittleEndianUInt64(at: 1)),
                      version: Int64(bitPattern: b.loadLittleEndianUInt64(at: 9)),
                      lease: Int64(bitPattern: b.loadLittleEndianUInt64(at: 17)),
                      keyLength: keyLength)
    }

    /// Decodes a whole record into a KeyValue (a tombstone decodes with empty value and zeros).
    static func decode(_ bytes: [UInt8], revision: Revision) throws(MVCCError) -> (KeyValue, isTombstone: Bool) {
        let r: Result<(KeyValue, Bool), MVCCError> = bytes.withUnsafeBytes { b in
            do throws(MVCCError) {
                let h = try parseHeader(b, revision: revision)
                let key = Array(b[headerSize ..< headerSize + h.keyLength])
                let value = Array(b[(headerSize + h.keyLength)...])
                return .success((KeyValue(key: key, value: value, createRevision: h.createRevision,
                                          modRevision: revision.main, version: h.version, lease: h.lease),
                                 h.isTombstone))
            } catch {
                return .failure(error)
            }
        }
        return try r.get()
    }
}
