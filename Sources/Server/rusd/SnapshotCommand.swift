#if canImport(Glibc)
import Glibc
#endif
import EngineAPI
import Engines
import MVCC

/// `rusd snapshot restore FILE [--data-dir DIR] [--engine NAME]` and `rusd snapshot status FILE`.
///
/// restore: verifies the snapshot first (length, SHA-256 trailer, structure: see
/// `SnapshotFormat`), refuses an existing data dir (as etcdctl snapshot restore does), writes
/// the store into `DIR.restoring-PID` with the chosen engine, opens it as the server would to
/// check it, and only then renames it to DIR. On any failure the temporary directory is
/// removed: DIR is either complete or absent. Any engine can restore a snapshot any engine
/// wrote (the format is engine-neutral), so this is how a store moves between engines.
/// status: verifies and prints the record count and size.
enum SnapshotCommand {
    static let usage = """
        usage: rusd snapshot restore FILE [--data-dir DIR] [--engine NAME]
               rusd snapshot status FILE
        """

    static func run(_ args: [String]) -> Never {
        guard let sub = args.first else { fail(usage, code: 2) }
        var positional: [String] = []
        var options: [String: String] = [:]
        var i = 1
        while i < args.count {
            let a = args[i]
            if a.hasPrefix("-") {
                let name = String(a.drop(while: { $0 == "-" }))
                if let eq = name.firstIndex(of: "=") {
                    options[String(name[..<eq])] = String(name[name.index(after: eq)...])
                } else if i + 1 < args.count {
                    options[name] = args[i + 1]
                    i += 1
                } else {
                    fail("flag --\(name) needs a value\n\(usage)", code: 2)
                }
            } else {
                positional.append(a)
            }
            i += 1
        }
        for name in options.keys where !["data-dir", "engine"].contains(name) {
            fail("unknown flag --\(name)\n\(usage)", code: 2)
        }
        guard positional.count == 1 else { fail("expected one snapshot file\n\(usage)", code: 2) }
        switch sub {
        case "restore":
            restore(file: positional[0], dataDir: options["data-dir"] ?? "default.etcd",
                    engine: options["engine"] ?? Engines.defaultName)
        case "status":
            do {
                let count = try SnapshotFile(path: positional[0]).verify()
                print("snapshot \(positional[0]): ok, \(count) records")
                exit(0)
            } catch {
                fail("\(error)")
            }
        default:
            fail("unknown snapshot command '\(sub)'\n\(usage)", code: 2)
        }
    }

    static func restore(file: String, dataDir: String, engine name: String) -> Never {
        guard Engines.registry.names.contains(name) else {
            fail("unknown engine '\(name)'; valid engines: \(Engines.registry.names.joined(separator: ", "))", code: 2)
        }
        var st = stat()
        if stat(dataDir, &st) == 0 { fail("data-dir \"\(dataDir)\" exists") }
        do {
            try SnapshotFile(path: file).verify()
        } catch {
            fail("\(error)")
        }
        let temporary = "\(dataDir).restoring-\(getpid())"
        if stat(temporary, &st) == 0 { fail("temporary directory \(temporary) exists; remove it first") }
        do {
            let summary = try write(file: file, into: temporary, engine: name)
            guard rename(temporary, dataDir) == 0 else {
                throw DataDirectory.Failure(description: "cannot rename \(temporary) to \(dataDir): \(String(cString: strerror(errno)))")
            }
            // Best effort: the restore is complete once renamed.
            try? PosixFiles.fsyncPath(PosixFiles.parentDirectory(of: dataDir))
            print("restored snapshot \(file) into \(dataDir) (engine \(name)): \(summary)")
            exit(0)
        } catch {
            try? PosixFiles.removeTree(temporary)
            fail("restore failed, nothing written to \(dataDir): \(error)")
        }
    }

    /// Writes the store into `path` and checks that it opens. Returns a one-line summary.
    private static func write(file: String, into path: String, engine name: String) throws -> String {
        let directory = try DataDirectory(path: path, engine: name)
        let engine = try Engines.registry.open(name, directory: directory.storePath)
        do {
            let count = try SnapshotFile(path: file).load(into: engine)
            let store = try MVCCStore(engine: engine)
            let hash = try store.hashKV(revision: 0)
            store.close()
            try engine.close()
            return "\(count) records, revision \(hash.currentRevision), compact revision \(hash.compactRevision), hashkv \(hash.hash)"
        } catch {
            try? engine.close()
            throw error
        }
    }
}
