import NIOCore

/// Parses a `grpc-timeout` header value as grpc-go does: a decimal integer of up to 8
/// characters followed by a unit (`H`, `M`, `S`, `m`, `u`, `n`). Like grpc-go (strconv.ParseInt)
/// it accepts a leading `+` or `-` (a negative timeout is a deadline already past); values too
/// large for `TimeAmount` are capped at `Int64.max` nanoseconds (about 292 years).
/// Returns nil for a malformed value.
func parseGRPCTimeout(_ value: String) -> TimeAmount? {
    let bytes = Array(value.utf8)
    guard bytes.count >= 2, bytes.count <= 9 else { return nil }
    var digits = bytes.dropLast()
    var negative = false
    if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
        negative = sign == UInt8(ascii: "-")
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty else { return nil }
    var amount: Int64 = 0
    for byte in digits {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))  // at most 8 digits: no overflow
    }
    if negative { amount = -amount }
    switch bytes[bytes.count - 1] {
    case UInt8(ascii: "H"): return .hours(amount)
    case UInt8(ascii: "M"): return .minutes(amount)
    case UInt8(ascii: "S"): return .seconds(amount)
    case UInt8(ascii: "m"): return .milliseconds(amount)
    case UInt8(ascii: "u"): return .microseconds(amount)
    case UInt8(ascii: "n"): return .nanoseconds(amount)
    default: return nil
    }
}
