import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp, removed (recursively) by `remove()`.
struct TempDirectory {
    let path: String

    init(_ label: String) {
        var template = Array("/tmp/rusd-\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: made!)
    }

    func remove() {
        try? PosixFiles.removeTree(path)
    }
}
