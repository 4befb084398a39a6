import EtcdProto
import MVCC

/// A RangeResponse in protobuf's binary encoding, written straight from the store's records:
/// the key and value bytes of each key-value are copied once, from the engine's record into
/// the response, with no `KeyValue`, `Mvccpb_KeyValue` or `Data` in between (a 10,000-key
/// list spent more CPU converting and sizing those than reading the store).
///
/// The bytes are exactly what swift-protobuf writes for the same `Etcdserverpb_RangeResponse`
/// (fields in number order, proto3 defaults omitted, int64 as 10-byte two's-complement
/// varints when negative); `RangeResponseEncodingTests` checks that byte for byte.
public struct EncodedRangeResponse: Sendable {
    /// The encoded ResponseHeader (field 1; always present, as the server always sets it).
    let header: [UInt8]
    let kvs: [StoredKeyValue]
    let keysOnly: Bool
    let more: Bool
    let count: Int64
    /// Total encoded size in bytes.
    public let size: Int

    init(header: Etcdserverpb_ResponseHeader, kvs: [StoredKeyValue], keysOnly: Bool, more: Bool, count: Int64) throws {
        self.header = try header.serializedBytes()
        self.kvs = kvs
        self.keysOnly = keysOnly
        self.more = more
        self.count = count
        var size = 1 + ProtoWire.varintSize(UInt64(self.header.count)) + self.header.count
        for kv in kvs {
            let n = Self.keyValueSize(kv, keysOnly: keysOnly)
            size += 1 + ProtoWire.varintSize(UInt64(n)) + n
        }
        if more { size += 2 }
        if count != 0 { size += 1 + ProtoWire.varintSize(UInt64(bitPattern: count)) }
        self.size = size
    }

    /// Writes the `size` bytes of the encoding into `out` (exactly `size` bytes long).
    public func write(into out: UnsafeMutableRawBufferPointer) {
        var w = ProtoWire.Writer(out)
        w.bytesField(1, header.count) { $0.append(header) }
        for kv in kvs {
            w.tag(2, wire: 2)
            w.varint(UInt64(Self.keyValueSize(kv, keysOnly: keysOnly)))
            kv.withKeyAndValue { key, value in
                if key.count > 0 { w.bytesField(1, key.count) { $0.append(key) } }
                w.int64Field(2, kv.createRevision)
                w.int64Field(3, kv.modRevision)
                w.int64Field(4, kv.version)
                if !keysOnly && value.count > 0 { w.bytesField(5, value.count) { $0.append(value) } }
                w.int64Field(6, kv.lease)
            }
        }
        if more { w.tag(3, wire: 0); w.varint(1) }
        w.int64Field(4, count)
        precondition(w.offset == out.count, "RangeResponse encoding wrote \(w.offset) of \(out.count) bytes")
    }

    /// Encoded size of one mvccpb.KeyValue (without its own tag and length).
    static func keyValueSize(_ kv: StoredKeyValue, keysOnly: Bool) -> Int {
        var n = 0
        if kv.keyCount > 0 { n += 1 + ProtoWire.varintSize(UInt64(kv.keyCount)) + kv.keyCount }
        n += ProtoWire.int64FieldSize(kv.createRevision)
        n += ProtoWire.int64FieldSize(kv.modRevision)
        n += ProtoWire.int64FieldSize(kv.version)
        if !keysOnly && kv.valueCount > 0 { n += 1 + ProtoWire.varintSize(UInt64(kv.valueCount)) + kv.valueCount }
        n += ProtoWire.int64FieldSize(kv.lease)
        return n
    }
}

/// Protobuf wire-format primitives for the hand-written encodings (field numbers < 16).
enum ProtoWire {
    static func varintSize(_ v: UInt64) -> Int {
        var v = v, n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    /// Tag + value of a proto3 int64 field; 0 when the value is the default (omitted).
    static func int64FieldSize(_ v: Int64) -> Int {
        v == 0 ? 0 : 1 + varintSize(UInt64(bitPattern: v))
    }

    /// Writes into a buffer sized in advance (the sizes above); never past its end.
    struct Writer {
        let out: UnsafeMutableRawBufferPointer
        private(set) var offset = 0

        init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

        mutating func varint(_ v: UInt64) {
            var v = v
            while v >= 0x80 {
                out[offset] = UInt8(truncatingIfNeeded: v) | 0x80
                offset += 1
                v >>= 7
            }
            out[offset] = UInt8(v)
            offset += 1
        }

        mutating func tag(_ field: Int, wire: Int) {
            out[offset] = UInt8(field << 3 | wire)
            offset += 1
        }

        mutating func int64Field(_ field: Int, _ v: Int64) {
            guard v != 0 else { return }
            tag(field, wire: 0)
            varint(UInt64(bitPattern: v))
        }

        /// A length-delimited field of `count` bytes that `body` appends.
        mutating func bytesField(_ field: Int, _ count: Int, _ body: (inout Writer) -> Void) {
            tag(field, wire: 2)
            varint(UInt64(count))
            let end = offset + count
            body(&self)
            precondition(offset == end, "length-delimited field \(field): wrote \(offset - end + count) of \(count) bytes")
        }

        mutating func append(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count <= out.count - offset, "encoding overruns its buffer")
            if bytes.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: out[offset ..< offset + bytes.count]).copyMemory(from: bytes)
            }
            offset += bytes.count
        }

        mutating func append(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { append($0) }
        }
    }
}

extension RangeExecution {
    /// Whether `r` is answered in store order with nothing filtered or sorted: then the
    /// response can be encoded straight from the records (`EtcdServer.rangeEncoded`).
    static func isPlainScan(_ r: Etcdserverpb_RangeRequest) -> Bool {
        r.minModRevision == 0 && r.maxModRevision == 0 && r.minCreateRevision == 0 && r.maxCreateRevision == 0
            && r.sortTarget == .key && (r.sortOrder == .none || r.sortOrder == .ascend)
    }

    /// `run` for a plain scan (`isPlainScan`), encoded from the records.
    static func runEncoded(_ r: Etcdserverpb_RangeRequest, on txn: ReadTxn,
                           header: (Int64) -> Etcdserverpb_ResponseHeader) throws(MVCCError) -> EncodedRangeResponse {
        var limit = Int(clamping: r.limit)
        if limit > 0 && limit < Int.max { limit += 1 }  // one more, to tell whether there is `more`
        let span = KeySpan.etcd(key: Array(r.key), rangeEnd: Array(r.rangeEnd))
        let stored = try txn.rangeStored(span, RangeOptions(revision: r.revision, limit: limit, countOnly: r.countOnly))
        var kvs = stored.kvs
        var more = false
        if r.limit > 0 && kvs.count > Int(clamping: r.limit) {
            kvs.removeLast(kvs.count - Int(clamping: r.limit))
            more = true
        }
        do {
            return try EncodedRangeResponse(header: header(stored.revision), kvs: kvs, keysOnly: r.keysOnly,
                                            more: more, count: Int64(stored.count))
        } catch {
            throw .engine("encoding the response header: \(error)")
        }
    }
}

extension EtcdServer {
    /// KV.Range answered as encoded bytes when the request is a plain scan (no sort other than
    /// by key ascending, no revision filters): the same answer as `range`, built without
    /// intermediate messages. nil: use `range`.
    public func rangeEncoded(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) -> EncodedRangeResponse? {
        guard RangeExecution.isPlainScan(r) else { return nil }
        try RequestValidation.check(r)
        let response: EncodedRangeResponse
        do {
            response = try RangeExecution.runEncoded(r, on: store.read(), header: header(revision:))
        } catch .compacted where r.revision <= 0 {
            // As `range`: a current read is never compacted; read again from a fresh snapshot.
            do { response = try RangeExecution.runEncoded(r, on: store.read(), header: header(revision:)) } catch { throw EtcdError(error) }
        } catch {
            throw EtcdError(error)
        }
        counters.recordMVCCTransaction(ranges: 1)
        return response
    }
}
