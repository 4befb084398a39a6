import GRPCTransport
import SwiftProtobuf

/// etcd's JSON mapping for gateway messages (grpc-gateway's JSONPb with OrigName, as etcd 3.4
/// configures it): field names as in the .proto, 64-bit integers as strings, bytes as base64,
/// enums by name, fields with default values omitted. Requests may use the proto or the
/// lowerCamelCase names, enums by name or number; unknown fields are ignored.
enum GatewayJSON {
    /// A request body that is not a JSON value of the request's type.
    struct DecodingError: Error {
        let message: String
    }

    private static let encoding: JSONEncodingOptions = {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }()

    /// Strict first: swift-protobuf's `ignoreUnknownFields` also drops unknown enum names,
    /// which etcd refuses ("unknown value ... for enum ...").
    private static let strict = JSONDecodingOptions()
    private static let lenient: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    /// Decodes one JSON value; an empty body or `null` is the empty request, as in etcd.
    static func decode<M: SwiftProtobuf.Message>(_ json: ArraySlice<UInt8>) throws -> M {
        let value = json.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
        if value.isEmpty || value.elementsEqual("null".utf8) { return M() }
        let bytes = Array(value)
        do {
            return try M(jsonUTF8Bytes: bytes, options: strict)
        } catch JSONDecodingError.unknownField {
            // Unknown fields are ignored, as by etcd's gateway.
        } catch {
            throw DecodingError(message: "json: cannot decode \(M.protoMessageName): \(error)")
        }
        do {
            return try M(jsonUTF8Bytes: bytes, options: lenient)
        } catch {
            throw DecodingError(message: "json: cannot decode \(M.protoMessageName): \(error)")
        }
    }

    static func encode(_ message: some SwiftProtobuf.Message) throws -> [UInt8] {
        try message.jsonUTF8Bytes(options: encoding)
    }

    /// Splits a request body into its successive JSON values (streaming requests send one per
    /// message, usually newline-delimited). Scans brackets outside strings; an unbalanced tail
    /// is returned as a last value, which then fails to decode.
    static func values(_ body: [UInt8]) -> [ArraySlice<UInt8>] {
        var values: [ArraySlice<UInt8>] = []
        var i = body.startIndex
        while true {
            while i < body.endIndex, isSpace(body[i]) { i += 1 }
            guard i < body.endIndex else { return values }
            let start = i
            var depth = 0
            var inString = false
            var escaped = false
            scan: while i < body.endIndex {
                let c = body[i]
                i += 1
                if inString {
                    if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                    if !inString && depth == 0 { break scan }
                    continue
                }
                switch c {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth <= 0 { break scan }
                default:
                    if depth == 0 && (i == body.endIndex || isSpace(body[i])) { break scan }
                }
            }
            values.append(body[start..<i])
        }
    }

    private static func isSpace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
    }

    // MARK: Errors (grpc-gateway's shapes)

    /// `{"error": m, "message": m, "code": N}`, the body of a failed unary call.
    static func errorBody(_ status: GRPCStatus) -> [UInt8] {
        let message = quoted(status.message)
        return Array("{\"error\":\(message),\"message\":\(message),\"code\":\(status.code.rawValue)}".utf8)
    }

    /// `{"error": {"grpc_code": N, "http_code": H, "message": m, "http_status": text}}`, a
    /// streaming call's failure after it started.
    static func streamErrorChunk(_ status: GRPCStatus) -> [UInt8] {
        let http = httpStatus(status.code)
        var fields: [String] = []
        if status.code.rawValue != 0 { fields.append("\"grpc_code\":\(status.code.rawValue)") }
        fields.append("\"http_code\":\(http)")
        if !status.message.isEmpty { fields.append("\"message\":\(quoted(status.message))") }
        fields.append("\"http_status\":\(quoted(httpStatusText(http)))")
        return Array("{\"error\":{\(fields.joined(separator: ","))}}\n".utf8)
    }

    /// A JSON string literal of `text` (via swift-protobuf's string encoding).
    static func quoted(_ text: String) -> String {
        var value = Google_Protobuf_StringValue()
        value.value = text
        return (try? value.jsonString()) ?? "\"\""
    }

    /// grpc-gateway's `HTTPStatusFromCode`.
    static func httpStatus(_ code: GRPCStatus.Code) -> Int {
        switch code.rawValue {
        case 0: 200
        case 1: 408      // CANCELLED
        case 3: 400      // INVALID_ARGUMENT
        case 4: 504      // DEADLINE_EXCEEDED
        case 5: 404      // NOT_FOUND
        case 6: 409      // ALREADY_EXISTS
        case 7: 403      // PERMISSION_DENIED
        case 8: 429      // RESOURCE_EXHAUSTED
        case 9: 412      // FAILED_PRECONDITION
        case 10: 409     // ABORTED
        case 11: 400     // OUT_OF_RANGE
        case 12: 501     // UNIMPLEMENTED
        case 14: 503     // UNAVAILABLE
        case 16: 401     // UNAUTHENTICATED
        default: 500     // UNKNOWN, INTERNAL, DATA_LOSS
        }
    }

    static func httpStatusText(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 412: "Precondition Failed"
        case 429: "Too Many Requests"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Internal Server Error"
        }
    }
}
