#if canImport(Glibc)
import Glibc
#endif
import FuzzTargets
#if RUSD_FUZZ_FILE_FORMATS_ONLY
/// RUSD_FUZZ=files (scripts/fuzz.sh --ci): the file-format targets only, without the server.
let targets = FuzzTarget.fileFormats
#else
import ServerFuzzTargets
let targets = FuzzTarget.all
#endif

// The libFuzzer driver for the fuzz targets (built only with RUSD_FUZZ set; scripts/fuzz.sh).
// The target is chosen by the environment variable RUSD_FUZZ_TARGET; with RUSD_FUZZ_LIST set the
// driver prints the names of the targets built in, one a line, and exits. SwiftPM links an
// executable's entry point as `<module>_main`; it hands control to libFuzzer (linked without its
// own main), which calls `runOne` per input. A `FuzzFinding` aborts, so libFuzzer saves the input.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The chosen target and a scratch directory of this process (immutable after first use).
let selected: (target: FuzzTarget, scratch: String) = {
    let name = getenv("RUSD_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = targets.first(where: { $0.name == name }) else {
        fatalError("RUSD_FUZZ_TARGET must name one of: \(targets.map(\.name).joined(separator: ", "))")
    }
    if let given = getenv("RUSD_FUZZ_SCRATCH") { return (target, String(cString: given)) }
    // /dev/shm when there is one: the file targets write every input to a file.
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    var template = Array("\(base)/rusd-fuzz-XXXXXX".utf8CString)
    guard let dir = mkdtemp(&template) else { fatalError("mkdtemp failed") }
    return (target, String(cString: dir))
}()

@_cdecl("rusd_fuzz_main")
func rusdFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    if getenv("RUSD_FUZZ_LIST") != nil {
        for t in targets { print(t.name) }
        return 0
    }
    _ = selected
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        let input = Array(UnsafeBufferPointer(start: data, count: size))
        do {
            try selected.target.run(input, selected.scratch)
        } catch {
            fatalError("fuzz finding in \(selected.target.name): \(error)")
        }
        return 0
    }
}
