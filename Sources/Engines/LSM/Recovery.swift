#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

/// Opening a store: lock the directory, read CURRENT and replay the manifest, open every table,
/// replay the write-ahead logs the manifest does not cover, write the recovered memtable to a
/// table, start a fresh log and a fresh manifest (a snapshot of the state), switch CURRENT to
/// it atomically, and delete files nothing refers to.
enum Recovery {
    struct State {
        var version: Version
        var log: LogWriter
        var manifest: LogWriter
        var nextFileNumber: UInt64
        var lastSequence: UInt64
        var flushBytes: UInt64
    }

    static func recover(directory: String, options: EngineOptions) throws -> (State, Int32) {
        let currentPath = FileNames.current(directory)
        let markerPath = FileNames.marker(directory)
        if FileSystem.exists(currentPath) && !FileSystem.exists(markerPath) {
            // LevelDB writes CURRENT and MANIFEST-* too: without our marker this is not our store.
            throw EngineError(.invalidArgument, engine: "lsm", path: directory, operation: "open",
                              message: "the directory holds a store without the lsm marker file \(FileNames.markerName) (another engine's, e.g. LevelDB's); refusing to open it")
        }
        if !FileSystem.exists(currentPath) {
            if !options.createIfMissing {
                throw EngineError(.notFound, engine: "lsm", path: directory, operation: "open",
                                  message: "no store here (CURRENT missing) and createIfMissing is false")
            }
            try FileSystem.createDirectory(directory)
            // Never create a store over another engine's files (e.g. LMDB's data.mdb).
            let foreign = try FileSystem.listDirectory(directory).filter { name in
                name != "." && name != ".." && name != "LOCK" && FileNames.parse(name).0 == .other
            }
            if !foreign.isEmpty {
                throw EngineError(.invalidArgument, engine: "lsm", path: directory, operation: "open",
                                  message: "the directory holds files that are not an lsm engine store (\(foreign.sorted().prefix(5).joined(separator: ", "))); refusing to create a new store over them")
            }
            if !FileSystem.exists(markerPath) {
                try FileSystem.writeAtomically(Array("rusd lsm engine store, format 2\n".utf8), to: markerPath, directory: directory)
            }
        }
        let lockPath = FileNames.lock(directory)
        let lockFD = try FileSystem.open(lockPath, flags: O_RDWR | O_CREAT, operation: "open lock file")
        if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            close(lockFD)
            throw EngineError(.io, engine: "lsm", path: lockPath, operation: "open",
                              message: "store is locked by another process: \(FileSystem.errnoMessage(e))")
        }
        do {
            return (try recoverLocked(directory: directory, options: options), lockFD)
        } catch {
            close(lockFD)
            throw error
        }
    }

    private static func recoverLocked(directory: String, options: EngineOptions) throws -> State {
        let currentPath = FileNames.current(directory)
        var files: [UInt64: (level: Int, meta: FileMetadata)] = [:]
        var logNumber: UInt64 = 0
        var nextFileNumber: UInt64 = 2
        var lastSequence: UInt64 = 0
        var oldManifest: String? = nil

        if FileSystem.exists(currentPath) {
            let name = try CurrentFile.manifestName(try FileSystem.readAll(currentPath), path: currentPath)
            let manifestPath = directory + "/" + name
            oldManifest = manifestPath
            guard FileSystem.exists(manifestPath) else {
                throw EngineError(.corruption, engine: "lsm", path: manifestPath, operation: "open",
                                  message: "manifest named by CURRENT is missing")
            }
            try LogFormat.read(path: manifestPath, type: LogFormat.manifestRecord, operation: "read manifest") { payload, offset in
                let edit = try VersionEdit.decode(payload, path: manifestPath, offset: offset)
                if let v = edit.logNumber { logNumber = v }
                if let v = edit.nextFileNumber { nextFileNumber = v }
                if let v = edit.lastSequence { lastSequence = v }
                for d in edit.deleted { files[d.number] = nil }
                for a in edit.added { files[a.file.number] = (a.level, a.file) }
            }
        }

        // Open every table the manifest lists.
        var tables: [UInt64: Table] = [:]
        var edit = VersionEdit()
        for (number, f) in files {
            let path = FileNames.table(directory, number)
            guard FileSystem.exists(path) else {
                throw EngineError(.corruption, engine: "lsm", path: path, operation: "open",
                                  message: "table listed in the manifest is missing")
            }
            tables[number] = try Table(path: path, number: number)
            edit.added.append((f.level, f.meta))
        }
        var version = Version.empty.applying(edit, tables: tables)

        // Replay the logs not yet in tables, oldest first.
        let names = try FileSystem.listDirectory(directory)
        var logs: [UInt64] = []
        for name in names {
            let (kind, n) = FileNames.parse(name)
            if kind != .other && kind != .temp { nextFileNumber = max(nextFileNumber, n + 1) }
            if kind == .log && n >= logNumber { logs.append(n) }
        }
        logs.sort()
        let recovered = Memtable(logNumber: 0)
        for n in logs {
            let path = FileNames.log(directory, n)
            try LogFormat.read(path: path, type: LogFormat.batchRecord, operation: "recover log") { payload, offset in
                let last = try WriteBatchCoding.decode(payload, path: path, offset: offset) { seq, kind, key, value in
                    recovered.add(sequence: seq, kind: kind, key: key, value: value)
                }
                lastSequence = max(lastSequence, last)
            }
        }

        // Recovered writes become a table.
        var snapshot = VersionEdit()
        var flushBytes: UInt64 = 0
        if !recovered.isEmpty {
            let number = nextFileNumber
            nextFileNumber += 1
            let (meta, table) = try Flush.writeTable(recovered, directory: directory, number: number)
            let level = Flush.pickLevel(version, meta)
            var add = VersionEdit()
            add.added.append((level, meta))
            version = version.applying(add, tables: [number: table])
            flushBytes += meta.size
        }

        let logNum = nextFileNumber
        nextFileNumber += 1
        let log = try LogWriter(path: FileNames.log(directory, logNum), number: logNum,
                                preallocate: min(max(options.writeBufferBytes / 4, 64 << 10), 4 << 20))
        let manifestNumber = nextFileNumber
        nextFileNumber += 1
        let manifestPath = FileNames.manifest(directory, manifestNumber)
        let manifest = try LogWriter(path: manifestPath, number: manifestNumber, preallocate: 0)
        snapshot.logNumber = logNum
        snapshot.nextFileNumber = nextFileNumber
        snapshot.lastSequence = lastSequence
        for (level, files) in version.levels.enumerated() {
            for f in files { snapshot.added.append((level, f.meta)) }
        }
        var record: [UInt8] = []
        snapshot.encode().withUnsafeBytes { LogFormat.appendRecord($0, type: LogFormat.manifestRecord, to: &record) }
        try manifest.append(record)
        try manifest.sync()
        try FileSystem.syncDirectory(directory)
        try FileSystem.writeAtomically(Array(("MANIFEST-" + FileNames.pad(manifestNumber) + "\n").utf8),
                                       to: currentPath, directory: directory)

        // Nothing refers to these any more.
        let live = Set(version.allFiles.map(\.number))
        for name in names {
            let (kind, n) = FileNames.parse(name)
            switch kind {
            case .log where n < logNum: FileSystem.remove(directory + "/" + name)
            case .table where !live.contains(n): FileSystem.remove(directory + "/" + name)
            case .manifest where n != manifestNumber: FileSystem.remove(directory + "/" + name)
            case .temp: FileSystem.remove(directory + "/" + name)
            default: break
            }
        }
        _ = oldManifest
        return State(version: version, log: log, manifest: manifest,
                     nextFileNumber: nextFileNumber, lastSequence: lastSequence, flushBytes: flushBytes)
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

/// CURRENT: the name of the live manifest, one line ("MANIFEST-000005\n"), replaced atomically.
/// Pure, so that it can be fuzzed (Tests/Fuzz/Targets, `data-dir-marker`).
package enum CurrentFile {
    /// The manifest file name `contents` (CURRENT's bytes, read from `path`) names, line feeds
    /// around it ignored: a name `FileNames.parse` takes for a manifest ("MANIFEST-" and 1 to 19
    /// decimal digits, as `FileNames.manifest` writes it; any other byte could name another
    /// file: a NUL ends the path the OS sees); anything else is `.corruption` naming `path` at
    /// offset 0.
    package static func manifestName(_ contents: [UInt8], path: String) throws -> String {
        guard var name = String(validating: contents, as: UTF8.self).map({ $0[...] }) else {
            throw FileSystem.corruption(path, "open", offset: 0, "CURRENT does not name a manifest")
        }
        while name.first == "\n" { name.removeFirst() }
        while name.last == "\n" { name.removeLast() }
        guard FileNames.parse(String(name)).0 == .manifest else {
            throw FileSystem.corruption(path, "open", offset: 0, "CURRENT does not name a manifest")
        }
        return String(name)
    }
}
