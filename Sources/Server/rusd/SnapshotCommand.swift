#if canImport(Glibc)
import Glibc
#endif
import EngineAPI
import Engines
import EtcdSnapshot
import MVCC

/// `rusd snapshot restore FILE [--data-dir DIR] [--engine NAME]` and
/// `rusd snapshot status FILE [-w simple|json|table|fields]`, on etcd's snapshot format (what
/// `etcdctl snapshot save` and rusd's Snapshot RPC write) and on an etcd data dir's
/// `member/snap/db`.
///
/// restore: checks the SHA-256 trailer, refuses an existing data dir (as etcdctl snapshot
/// restore does), writes the store into `DIR.restoring-PID` with the chosen engine (every
/// page checked as it is read), opens it as the server would to check it, and only then
/// renames it to DIR. On any failure the temporary directory is removed: DIR is either
/// complete or absent. A snapshot of any engine restores into any engine, so this is also how
/// a store moves between engines.
/// status: walks the whole database and prints what `etcdctl snapshot status` prints.
enum SnapshotCommand {
    static let usage = """
        usage: rusd snapshot restore FILE [--data-dir DIR] [--engine NAME]
               rusd snapshot status FILE [-w|--write-out simple|json|table|fields]
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
        if let w = options.removeValue(forKey: "w") { options["write-out"] = w }
        for name in options.keys where !["data-dir", "engine", "write-out"].contains(name) {
            fail("unknown flag --\(name)\n\(usage)", code: 2)
        }
        guard positional.count == 1 else { fail("expected one snapshot file\n\(usage)", code: 2) }
        switch sub {
        case "restore":
            restore(file: positional[0], dataDir: options["data-dir"] ?? "default.etcd",
                    engine: options["engine"] ?? Engines.defaultName)
        case "status":
            status(file: positional[0], format: options["write-out"] ?? "simple")
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
        let snapshot: EtcdSnapshotFile
        do {
            snapshot = try EtcdSnapshotFile(path: file)
            try snapshot.verifyChecksum()
        } catch {
            fail("\(error)")
        }
        let temporary = "\(dataDir).restoring-\(getpid())"
        if stat(temporary, &st) == 0 { fail("temporary directory \(temporary) exists; remove it first") }
        do {
            let summary = try write(snapshot, into: temporary, engine: name)
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
    private static func write(_ snapshot: EtcdSnapshotFile, into path: String, engine name: String) throws -> String {
        let directory = try DataDirectory(path: path, engine: name)
        let engine = try Engines.registry.open(name, directory: directory.storePath, options: restoreOptions(engine: name))
        do {
            let restored = try snapshot.restore(into: engine, checksumVerified: true)   // by restore(file:)
            let store = try MVCCStore(engine: engine)
            let hash = try store.hashKV(revision: 0)
            store.close()
            try engine.close()
            let alarms = restored.alarms.isEmpty ? "" : "; alarms raised (as etcd keeps them after its restore; etcdctl alarm disarm clears them): "
                + restored.alarms.map { "\("\($0.alarm)".uppercased()) (member \(String($0.memberID, radix: 16)))" }.joined(separator: ", ")
            return "\(restored.versions) key versions, \(restored.leases) leases, \(restored.users) users, "
                + "\(restored.roles) roles; revision \(hash.currentRevision), compact revision \(hash.compactRevision), hashkv \(hash.hash)" + alarms
        } catch {
            try? engine.close()
            throw error
        }
    }

    /// How a restore opens its engine. lmdb is opened bounded (a size limit no store reaches),
    /// which commits each batch straight to LMDB instead of through its write-ahead log and its
    /// in-memory set of pending writes, sorted at every background commit: the restore writes
    /// into a temporary directory that is deleted on any failure, so the log's crash safety
    /// buys nothing here, while it doubled the bytes written and the sort and hash trie cost
    /// about a third of the restore's CPU (the restore already writes in key order). The
    /// server reopens the store unbounded. The other engines' defaults suit a bulk load.
    static func restoreOptions(engine name: String) -> EngineOptions {
        var options = EngineOptions()
        if name == "lmdb" { options.maxSizeBytes = 1 << 40 }
        return options
    }

    /// Prints etcdctl's `snapshot status` output in the format etcdctl names `format`.
    static func status(file: String, format: String) -> Never {
        let s: EtcdSnapshotFile.Status
        do {
            s = try EtcdSnapshotFile(path: file).status()
        } catch {
            fail("\(error)")
        }
        let hash = String(s.hash, radix: 16)   // etcdctl: %x, unpadded
        switch format {
        case "simple":
            print("\(hash), \(s.revision), \(s.totalKey), \(humanBytes(s.totalSize))")
        case "json":
            print("{\"hash\":\(s.hash),\"revision\":\(s.revision),\"totalKey\":\(s.totalKey),\"totalSize\":\(s.totalSize)}")
        case "fields":
            print("\"Hash\" : \(s.hash)\n\"Revision\" : \(s.revision)\n\"Keys\" : \(s.totalKey)\n\"Size\" : \(s.totalSize)")
        case "table":
            print(table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                        [hash, "\(s.revision)", "\(s.totalKey)", humanBytes(s.totalSize)]))
        default:
            fail("\(format) not supported as output format", code: 2)
        }
        exit(0)
    }

    /// Bytes in SI units as etcdctl prints them (go-humanize's Bytes: "33 kB", "1.2 MB").
    static func humanBytes(_ n: Int) -> String {
        if n < 10 { return "\(n) B" }
        let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
        var e = 0
        var scaled = Double(n)
        while scaled >= 1000 && e < units.count - 1 {
            scaled /= 1000
            e += 1
        }
        let rounded = (scaled * 10 + 0.5).rounded(.down) / 10
        if rounded < 10 {
            let tenths = Int((rounded * 10).rounded())
            return "\(tenths / 10).\(tenths % 10) \(units[e])"
        }
        return "\(Int(rounded.rounded(.toNearestOrEven))) \(units[e])"
    }

    /// One-row table in etcdctl's style: centred headers, right-aligned cells.
    static func table(_ headers: [String], _ cells: [String]) -> String {
        let widths = zip(headers, cells).map { max($0.count, $1.count) }
        let rule = "+" + widths.map { String(repeating: "-", count: $0 + 2) + "+" }.joined()
        func centred(_ s: String, _ w: Int) -> String {
            let left = (w - s.count) / 2
            return String(repeating: " ", count: left) + s + String(repeating: " ", count: w - s.count - left)
        }
        let head = "|" + zip(headers, widths).map { " " + centred($0, $1) + " |" }.joined()
        let row = "|" + zip(cells, widths).map { " " + String(repeating: " ", count: $1 - $0.count) + $0 + " |" }.joined()
        return [rule, head, rule, row, rule].joined(separator: "\n")
    }
}
