import CNghttp2
#if canImport(Glibc)
import Glibc
#endif

/// Builds an `nghttp2_nv` array for a header list, valid during `body`.
/// (nghttp2's submit functions copy names and values, so nothing must outlive the call.)
func withHeaderList<R>(_ headers: [(String, String)],
                       _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
    var spans: [(Int, Int, Int, Int)] = []
    spans.reserveCapacity(headers.count)
    for (name, value) in headers {
        let nameStart = bytes.count
        bytes.append(contentsOf: name.utf8)
        let valueStart = bytes.count
        bytes.append(contentsOf: value.utf8)
        spans.append((nameStart, name.utf8.count, valueStart, value.utf8.count))
    }
    bytes.append(0)  // never empty, so baseAddress is non-nil
    return bytes.withUnsafeMutableBufferPointer { storage in
        let base = storage.baseAddress!
        var nvs = spans.map { span in
            nghttp2_nv(name: base + span.0, value: base + span.2, namelen: span.1, valuelen: span.3,
                       flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        return nvs.withUnsafeMutableBufferPointer { body(UnsafePointer($0.baseAddress!), $0.count) }
    }
}

/// Constants of nghttp2's C enums, as the integer types its structs use.
enum H2 {
    static let data = UInt8(NGHTTP2_DATA.rawValue)
    static let headers = UInt8(NGHTTP2_HEADERS.rawValue)
    static let rstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
    static let ping = UInt8(NGHTTP2_PING.rawValue)
    static let goaway = UInt8(NGHTTP2_GOAWAY.rawValue)
    static let settings = UInt8(NGHTTP2_SETTINGS.rawValue)
    static let windowUpdate = UInt8(NGHTTP2_WINDOW_UPDATE.rawValue)
    static let priority = UInt8(NGHTTP2_PRIORITY.rawValue)
    static let endStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    static let ack = UInt8(NGHTTP2_FLAG_ACK.rawValue)
    static let none = UInt8(NGHTTP2_FLAG_NONE.rawValue)
    static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    static let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
    static let temporalCallbackFailure = Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    static let pause = Int32(NGHTTP2_ERR_PAUSE.rawValue)
    static let eof = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    static let noEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
    static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
    static let protocolError = UInt32(NGHTTP2_PROTOCOL_ERROR.rawValue)
    static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
    static let frameSizeError = UInt32(NGHTTP2_FRAME_SIZE_ERROR.rawValue)
    static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
    static let requestCategory = NGHTTP2_HCAT_REQUEST
}

/// A header list built once and never freed, which nghttp2 may reference without copying
/// (`NGHTTP2_NV_FLAG_NO_COPY_NAME | NO_COPY_VALUE`). Immutable after creation.
struct StaticHeaderList: @unchecked Sendable {
    let pointer: UnsafePointer<nghttp2_nv>
    let count: Int

    init(_ headers: [(String, String)]) {
        let nvs = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: headers.count)
        for (i, (name, value)) in headers.enumerated() {
            func immortal(_ s: String) -> UnsafeMutablePointer<UInt8> {
                let bytes = Array(s.utf8)
                let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
                p.initialize(from: bytes, count: bytes.count)
                return p
            }
            nvs[i] = nghttp2_nv(name: immortal(name), value: immortal(value),
                                namelen: name.utf8.count, valuelen: value.utf8.count,
                                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue))
        }
        pointer = UnsafePointer(nvs)
        count = headers.count
    }

    /// `:status: 200`, `content-type: application/grpc`.
    static let grpcResponse = StaticHeaderList([(":status", "200"), ("content-type", "application/grpc")])
    /// `grpc-status: 0`.
    static let okTrailers = StaticHeaderList([("grpc-status", "0")])
}

/// A header list built once and reused, freed with its owner. nghttp2 copies it on each submit.
final class OwnedHeaderList {
    let pointer: UnsafePointer<nghttp2_nv>
    let count: Int
    private let nvs: UnsafeMutablePointer<nghttp2_nv>
    private let bytes: UnsafeMutablePointer<UInt8>

    init(_ headers: [(String, String)]) {
        let total = headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }
        bytes = .allocate(capacity: max(1, total))
        nvs = .allocate(capacity: max(1, headers.count))
        var offset = 0
        for (i, (name, value)) in headers.enumerated() {
            let nameStart = bytes + offset
            for byte in name.utf8 { bytes[offset] = byte; offset += 1 }
            let valueStart = bytes + offset
            for byte in value.utf8 { bytes[offset] = byte; offset += 1 }
            nvs[i] = nghttp2_nv(name: nameStart, value: valueStart, namelen: name.utf8.count,
                                valuelen: value.utf8.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        pointer = UnsafePointer(nvs)
        count = headers.count
    }

    deinit {
        nvs.deallocate()
        bytes.deallocate()
    }
}

/// Whether the `length` bytes at `bytes` spell `literal` (ASCII).
@inline(__always)
func bytesEqual(_ bytes: UnsafePointer<UInt8>?, _ length: Int, _ literal: StaticString) -> Bool {
    guard length == literal.utf8CodeUnitCount, let bytes else { return false }
    return memcmp(bytes, literal.utf8Start, length) == 0
}
