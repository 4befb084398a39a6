#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

extension LSMEngine {
    /// Starts the thread that flushes memtables and runs compactions, one job at a time.
    /// Detached (the thread keeps the engine alive until its loop ends); `close()` waits for it
    /// through `bgExited`.
    func startBackground() {
        pthread_detach(startThread { self.backgroundLoop() })
    }

    private func backgroundLoop() {
        mu.lock()
        while !shuttingDown {
            if bgError != nil {
                bgDoneCond.broadcast()
                bgCond.wait(mu)
                continue
            }
            do {
                if imm != nil {
                    try flushImmutable()
                } else if manualDone < manualRequested {
                    let target = manualRequested
                    if let plan = fullCompactionPlan() { try runCompaction(plan) }
                    manualDone = target
                } else if let plan = pickCompaction() {
                    try runCompaction(plan)
                } else {
                    bgCond.wait(mu)
                    continue
                }
            } catch let e as EngineError {
                if !(shuttingDown && e.kind == .closed) { bgError = e }
            } catch {
                bgError = EngineError(.io, engine: "lsm", path: directory, operation: "background", message: "\(error)")
            }
            bgDoneCond.broadcast()
        }
        bgExited = true
        bgDoneCond.broadcast()
        mu.unlock()
    }

    /// Writes the immutable memtable to a table and records it. `mu` held on entry and exit.
    func flushImmutable() throws {
        guard let imm else { return }
        let number = nextFileNumber
        nextFileNumber += 1
        var edit = VersionEdit()
        edit.logNumber = mem.logNumber
        var tables: [UInt64: Table] = [:]
        if let range = imm.userKeyRange {
            // The level it will go to decides the filter (see TableBuilder.init). Only this
            // thread changes `current` and `runningCompaction`, so the level chosen after
            // writing is the same one.
            let expected = range.smallest.withUnsafeBytes { s in
                range.largest.withUnsafeBytes { Flush.pickLevel(current, smallestUser: s, largestUser: $0, running: runningCompaction) }
            }
            mu.unlock()
            let result: Result<(FileMetadata, Table), Error>
            do {
                result = .success(try Flush.writeTable(imm, directory: directory, number: number,
                                                       filter: expected != Version.bottomLevel))
            } catch {
                result = .failure(error)
            }
            mu.lock()
            let (meta, table) = try result.get()
            let level = Flush.pickLevel(current, meta, running: runningCompaction)
            edit.added.append((level, meta))
            tables[number] = table
        }
        do {
            try logAndApply(edit, tables: tables)
        } catch {
            for t in tables.values { t.markObsolete() }
            throw error
        }
        self.imm = nil
        // Counted together once the flush is in the version: logAndApply releases `mu` during
        // its I/O, and stats() read then saw a flush to the bottom not yet counted as a flush.
        for (level, meta) in edit.added {
            counters.flushBytes += meta.size
            if level == Version.bottomLevel { counters.flushesToBottom += 1 }
        }
        counters.flushes += 1
        FileSystem.remove(FileNames.log(directory, imm.logNumber))
        bgDoneCond.broadcast()
    }

    /// Appends `edit` to the manifest (synced) and installs the resulting version. Only the
    /// background thread calls it. `mu` held on entry and exit; released during the I/O.
    func logAndApply(_ edit: VersionEdit, tables: [UInt64: Table]) throws {
        var edit = edit
        edit.nextFileNumber = nextFileNumber
        edit.lastSequence = lastSequence
        let newVersion = current.applying(edit, tables: tables)
        var record: [UInt8] = []
        edit.encode().withUnsafeBytes { LogFormat.appendRecord($0, type: LogFormat.manifestRecord, to: &record) }
        let manifest = self.manifest
        mu.unlock()
        var failure: Error? = nil
        do {
            if !tables.isEmpty { try FileSystem.syncDirectory(directory) }
            try manifest.append(record)
            try manifest.sync()
        } catch {
            failure = error
        }
        mu.lock()
        if let failure { throw failure }
        counters.manifestBytes += UInt64(record.count)
        current = newVersion
    }
}
