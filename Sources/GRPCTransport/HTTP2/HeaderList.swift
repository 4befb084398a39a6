import CNghttp2

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
    static let endStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    static let ack = UInt8(NGHTTP2_FLAG_ACK.rawValue)
    static let none = UInt8(NGHTTP2_FLAG_NONE.rawValue)
    static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    static let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
    static let eof = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    static let noEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
    static let noError = UInt32(NGHTTP2_NO_ERROR.rawValue)
    static let cancel = UInt32(NGHTTP2_CANCEL.rawValue)
    static let enhanceYourCalm = UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
    static let requestCategory = NGHTTP2_HCAT_REQUEST
}
