/// A gRPC status: a code (gRPC's 0...16) and a human-readable message.
///
/// Handlers throw or `fail` with a `GRPCStatus` to end a call with that status; any other
/// `Error` ends the call with `UNKNOWN` and the error's description as the message.
/// On the wire the message travels percent-encoded in the `grpc-message` trailer
/// (see `GRPCStatus.percentEncode(_:)`).
public struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// A gRPC status code, as numbered by the gRPC specification (`codes.Code` in grpc-go).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let internalError = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
            "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
            "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
            "Unauthenticated",
        ]
        /// grpc-go's spelling of the code (`codes.Code.String()`).
        public var description: String {
            (0..<Code.names.count).contains(rawValue) ? Code.names[rawValue] : "Code(\(rawValue))"
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public static let ok = GRPCStatus(.ok)

    /// Formats like grpc-go's `status.Error`: `rpc error: code = NotFound desc = ...`.
    public var description: String { "rpc error: code = \(code) desc = \(message)" }

    /// The status an arbitrary error maps to: itself if it is a `GRPCStatus`, else `UNKNOWN`.
    public init(from error: any Error) {
        if let status = error as? GRPCStatus {
            self = status
        } else {
            self.init(.unknown, String(describing: error))
        }
    }
}

extension GRPCStatus {
    /// Percent-encodes a status message for the `grpc-message` trailer as the gRPC HTTP/2
    /// protocol specifies: bytes outside 0x20...0x7E and `%` itself become `%XX`.
    public static func percentEncode(_ message: String) -> String {
        var needs = false
        for byte in message.utf8 where byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "%") {
            needs = true
            break
        }
        if !needs { return message }
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count * 3)
        for byte in message.utf8 {
            if byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "%") {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a percent-encoded `grpc-message`; malformed escapes are kept verbatim.
    public static func percentDecode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        guard bytes.contains(UInt8(ascii: "%")) else { return encoded }
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
