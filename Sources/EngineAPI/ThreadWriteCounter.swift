#if canImport(Glibc)
import Glibc
#endif

/// Bytes the calling thread has handed to write(2)/pwrite(2)/writev(2) so far, from the
/// kernel's per-thread accounting (`wchar` in /proc/thread-self/io). An engine whose commit
/// runs entirely on the calling thread (lmdb's, sqlite's group leader) takes the difference
/// around it: exactly what the library wrote to its files. nil where procfs is unavailable.
package enum ThreadWriteCounter {
    package static func bytesWritten() -> UInt64? {
        let fd = open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buf -> UInt64? in
            let n = read(fd, buf.baseAddress, buf.count)
            guard n > 0 else { return nil }
            return wchar(in: UnsafeBufferPointer(rebasing: buf[0..<n]))
        }
    }

    /// The value of the "wchar: " line of /proc/<tid>/io text (lines "name: value\n").
    static func wchar(in text: UnsafeBufferPointer<UInt8>) -> UInt64? {
        let needle = Array("wchar: ".utf8)
        var i = 0
        while i + needle.count <= text.count {
            if (i == 0 || text[i - 1] == UInt8(ascii: "\n")) && Array(text[i..<(i + needle.count)]) == needle {
                var value: UInt64 = 0
                var j = i + needle.count
                while j < text.count, text[j] >= 48, text[j] <= 57 {
                    value = value &* 10 &+ UInt64(text[j] - 48)
                    j += 1
                }
                return value
            }
            i += 1
        }
        return nil
    }
}
