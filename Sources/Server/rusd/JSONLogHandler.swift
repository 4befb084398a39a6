#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Writes one JSON object per line, shaped like etcd's zap logger output:
/// {"level":"info","ts":"2026-11-25T18:30:00.123Z","msg":"ready to serve client requests","address":"127.0.0.1:2379"}
/// so that log scrapers written for etcd keep working.
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let label: String
    let fileDescriptor: Int32

    init(label: String, level: Logger.Level, fileDescriptor: Int32) {
        self.label = label
        self.logLevel = level
        self.fileDescriptor = fileDescriptor
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "{\"level\":\"\(Self.levelName(event.level))\",\"ts\":\"\(Self.timestamp())\",\"msg\":"
        Self.appendQuoted(event.message.description, to: &line)
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            line += ","
            Self.appendQuoted(key, to: &line)
            line += ":"
            Self.appendQuoted(merged[key]!.description, to: &line)
        }
        line += "}\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }

    /// zap's level names (swift-log's notice → info, critical → fatal).
    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: return "debug"
        case .info, .notice: return "info"
        case .warning: return "warn"
        case .error: return "error"
        case .critical: return "fatal"
        }
    }

    /// etcd's names → swift-log levels.
    static func level(named name: String) -> Logger.Level {
        switch name {
        case "debug": return .debug
        case "warn": return .warning
        case "error": return .error
        case "panic", "fatal": return .critical
        default: return .info
        }
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ts.tv_nsec / 1_000_000), 3))Z"
    }

    static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
