#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to a file descriptor (for error messages before logging is set up).
struct FileDescriptorOutput {
    let descriptor: Int32
    static let standardError = FileDescriptorOutput(descriptor: STDERR_FILENO)

    func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }
}
