import EngineAPI

// Compaction policy: leveled, with a dynamic base level.
//
// Why leveled for etcd: MVCC keys are revisions, so writes arrive in increasing key order and
// each flushed table overlaps nothing already stored. Such tables are placed directly in the
// bottom level (see Flush.pickLevel) and never rewritten: write amplification is WAL + one
// table write. Leveled keeps one sorted run per level, so a range scan (etcd's Range over a
// revision interval) reads one file per level and space amplification stays ~1.1x; size-tiered
// would keep several overlapping runs (more files per read, up to 2x space during merges) and
// its advantage, cheaper ingestion of random keys, is already had for free on ordered keys.
// MVCC compaction deletes the oldest revisions in bulk: the tombstones cover a contiguous prefix
// of the key space, so the compaction that pushes them down rewrites only the files of that
// prefix and drops tombstone and data together at the bottom level.
//
// Triggers: level 0 reaches 4 files; or level L (1 <= L < deepest non-empty level D) holds more
// than target(L) = max(base, bytes(D) / 10^(D-L)) bytes. Level 0 compacts into the shallowest
// non-empty level (or the bottom), one file of level L into level L+1 (a trivial move when it
// overlaps nothing there). When no level is over its size, a file made mostly of tombstones
// that still has data below it is pushed down one level, so bulk deletes reclaim space on their
// own. `reclaimSpace` merges every table into the bottom level.

struct CompactionPlan {
    var level: Int
    var outputLevel: Int
    /// Input files: from `level` and from `outputLevel` (all levels for a full compaction).
    var inputs: [(level: Int, file: TableFile)]
    var trivialMove: Bool
    var full: Bool
}

extension LSMEngine {
    /// Chooses the next compaction, if any level needs one. `mu` held.
    func pickCompaction() -> CompactionPlan? {
        let v = current
        var deepest = 0
        for l in stride(from: Version.bottomLevel, through: 1, by: -1) where !v.levels[l].isEmpty {
            deepest = l
            break
        }
        var bestLevel = -1
        var bestScore = 1.0
        let l0Score = Double(v.levels[0].count) / Double(LSMEngine.level0CompactionTrigger)
        if l0Score >= bestScore {
            bestScore = l0Score
            bestLevel = 0
        }
        if deepest > 1 {
            let bottomBytes = Double(v.bytes(level: deepest))
            for l in 1..<deepest {
                var target = bottomBytes
                for _ in l..<deepest { target /= 10 }
                target = max(target, Double(levelBaseBytes))
                let score = Double(v.bytes(level: l)) / target
                if score > bestScore {
                    bestScore = score
                    bestLevel = l
                }
            }
        }
        if bestLevel < 0 {
            // No level is over its size: push down a file of mostly tombstones that still has
            // data below it (MVCC compaction's bulk deletes), so space is reclaimed without
            // waiting for reclaimSpace.
            for l in 1..<Version.bottomLevel {
                for (i, f) in v.levels[l].enumerated() where f.meta.isTombstoneHeavy {
                    let below = f.meta.smallest.withUnsafeBytes { s in f.meta.largest.withUnsafeBytes { lg in
                        (l + 1..<Version.levelCount).contains { v.overlaps(level: $0, smallestUser: userKey(s), largestUser: userKey(lg)) }
                    } }
                    if below {
                        let overlap = f.meta.smallest.withUnsafeBytes { s in f.meta.largest.withUnsafeBytes { lg in
                            v.overlapping(level: l + 1, smallestUser: userKey(s), largestUser: userKey(lg))
                        } }
                        var inputs = [(level: l, file: v.levels[l][i])]
                        inputs += overlap.map { (level: l + 1, file: v.levels[l + 1][$0]) }
                        return CompactionPlan(level: l, outputLevel: l + 1, inputs: inputs,
                                              trivialMove: overlap.isEmpty, full: false)
                    }
                }
            }
            return nil
        }
        if bestLevel == 0 {
            let inputs0 = v.levels[0]
            var shallowest = Version.levelCount
            for l in 1..<Version.levelCount where !v.levels[l].isEmpty {
                shallowest = l
                break
            }
            var out = min(shallowest, Version.bottomLevel)
            if shallowest < Version.levelCount && shallowest > 1 && v.bytes(level: shallowest) > levelBaseBytes {
                out = shallowest - 1
            }
            var smallest = inputs0[0].meta.smallest, largest = inputs0[0].meta.largest
            for f in inputs0.dropFirst() {
                if f.meta.smallest.withUnsafeBytes({ a in smallest.withUnsafeBytes { compareBytes(userKey(a), userKey($0)) < 0 } }) {
                    smallest = f.meta.smallest
                }
                if f.meta.largest.withUnsafeBytes({ a in largest.withUnsafeBytes { compareBytes(userKey(a), userKey($0)) > 0 } }) {
                    largest = f.meta.largest
                }
            }
            let overlap = smallest.withUnsafeBytes { s in largest.withUnsafeBytes { l in
                v.overlapping(level: out, smallestUser: userKey(s), largestUser: userKey(l))
            } }
            var inputs = inputs0.map { (level: 0, file: $0) }
            inputs += overlap.map { (level: out, file: v.levels[out][$0]) }
            let trivial = inputs0.count == 1 && overlap.isEmpty
            return CompactionPlan(level: 0, outputLevel: out, inputs: inputs, trivialMove: trivial, full: false)
        }
        // One file of bestLevel, round-robin by key, with what it overlaps below.
        let files = v.levels[bestLevel]
        let pointer = compactPointers[bestLevel]
        var pick = 0
        if !pointer.isEmpty {
            if let i = files.firstIndex(where: { f in
                f.meta.largest.withUnsafeBytes { a in pointer.withUnsafeBytes { compareInternalKeys(a, $0) > 0 } }
            }) { pick = i }
        }
        let f = files[pick]
        compactPointers[bestLevel] = f.meta.largest
        let out = bestLevel + 1
        let overlap = f.meta.smallest.withUnsafeBytes { s in f.meta.largest.withUnsafeBytes { l in
            v.overlapping(level: out, smallestUser: userKey(s), largestUser: userKey(l))
        } }
        var inputs = [(level: bestLevel, file: f)]
        inputs += overlap.map { (level: out, file: v.levels[out][$0]) }
        return CompactionPlan(level: bestLevel, outputLevel: out, inputs: inputs, trivialMove: overlap.isEmpty, full: false)
    }

    /// Every table, merged into the bottom level. `mu` held.
    func fullCompactionPlan() -> CompactionPlan? {
        var inputs: [(level: Int, file: TableFile)] = []
        for (l, files) in current.levels.enumerated() {
            for f in files { inputs.append((l, f)) }
        }
        if inputs.isEmpty { return nil }
        return CompactionPlan(level: 0, outputLevel: Version.bottomLevel, inputs: inputs, trivialMove: false, full: true)
    }

    /// Runs `plan`. `mu` held on entry and exit; released while merging.
    func runCompaction(_ plan: CompactionPlan) throws {
        runningCompaction = Flush.userKeyRange(plan.inputs.map(\.file.meta))
        defer { runningCompaction = nil }
        if plan.trivialMove {
            let f = plan.inputs[0].file
            var edit = VersionEdit()
            edit.deleted.append((plan.level, f.number))
            edit.added.append((plan.outputLevel, f.meta))
            try logAndApply(edit, tables: [f.number: f.table])
            counters.trivialMoves += 1
            return
        }
        let smallestSnapshot = snapshots.keys.min() ?? lastSequence
        let inputVersion = current
        mu.unlock()
        var outputs: [(FileMetadata, Table)] = []
        var readBytes: UInt64 = 0
        var failure: Error? = nil
        do {
            outputs = try merge(plan, inputVersion: inputVersion, smallestSnapshot: smallestSnapshot)
            readBytes = plan.inputs.reduce(0) { $0 + $1.file.size }
        } catch {
            failure = error
        }
        mu.lock()
        if let failure {
            for (_, t) in outputs { t.markObsolete() }
            throw failure
        }
        var edit = VersionEdit()
        for i in plan.inputs { edit.deleted.append((i.level, i.file.number)) }
        var tables: [UInt64: Table] = [:]
        for (meta, t) in outputs {
            edit.added.append((plan.outputLevel, meta))
            tables[meta.number] = t
        }
        do {
            try logAndApply(edit, tables: tables)
        } catch {
            for (_, t) in outputs { t.markObsolete() }
            throw error
        }
        for i in plan.inputs { i.file.table.markObsolete() }
        counters.compactions += 1
        counters.compactionBytes += outputs.reduce(0) { $0 + $1.0.size }
        counters.compactionReadBytes += readBytes
    }

    /// Whether no level deeper than `level` can hold `user` (so a tombstone can be dropped).
    private func isBaseLevel(_ user: UnsafeRawBufferPointer, below level: Int, in v: Version) -> Bool {
        var l = level + 1
        while l < Version.levelCount {
            let files = v.levels[l]
            var lo = 0, hi = files.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if files[mid].meta.largest.withUnsafeBytes({ compareBytes(userKey($0), user) < 0 }) { lo = mid + 1 } else { hi = mid }
            }
            if lo < files.count && files[lo].meta.smallest.withUnsafeBytes({ compareBytes(userKey($0), user) <= 0 }) {
                return false
            }
            l += 1
        }
        return true
    }

    /// Merges the inputs into new tables (mu NOT held). Versions hidden by a newer version that
    /// every view can see are dropped; so are tombstones at or below the base level.
    private func merge(_ plan: CompactionPlan, inputVersion: Version, smallestSnapshot: UInt64) throws -> [(FileMetadata, Table)] {
        var children: [any InternalIterator] = []
        var byLevel: [Int: [TableFile]] = [:]
        for i in plan.inputs { byLevel[i.level, default: []].append(i.file) }
        for (level, files) in byLevel {
            if level == 0 {
                for f in files { children.append(f.table.makeIterator()) }
            } else {
                children.append(LevelIterator(files: files))
            }
        }
        let it = MergingIterator(children: children, reverse: false)
        try it.seekToFirst()
        var outputs: [(FileMetadata, Table)] = []
        var builder: TableBuilder? = nil
        var builderNumber: UInt64 = 0
        var currentUser: [UInt8] = []
        var haveUser = false
        var lastSequenceForKey = UInt64.max
        func finishOutput() throws {
            guard let b = builder else { return }
            let summary = try b.finish()
            let table = try Table(path: b.path, number: builderNumber)
            var meta = FileMetadata(number: builderNumber, size: summary.fileSize,
                                    smallest: summary.smallest, largest: summary.largest)
            meta.entries = UInt64(summary.entries)
            meta.deletions = UInt64(summary.deletions)
            outputs.append((meta, table))
            builder = nil
            // Let a waiting memtable flush run between output files (its level: Flush.pickLevel).
            mu.lock()
            defer { mu.unlock() }
            if imm != nil { try flushImmutable() }
            if shuttingDown {
                throw EngineError(.closed, engine: "lsm", path: directory, operation: "compaction", message: "shutting down")
            }
        }
        do {
            while it.isValid {
                let k = it.key
                let user = userKey(k)
                let t = trailer(k)
                let seq = t >> 8
                let newUser = !haveUser || currentUser.withUnsafeBytes { compareBytes($0, user) != 0 }
                if newUser {
                    if let b = builder, b.estimatedSize >= targetFileBytes { try finishOutput() }
                    currentUser.removeAll(keepingCapacity: true)
                    currentUser.append(contentsOf: user)
                    haveUser = true
                    lastSequenceForKey = UInt64.max
                }
                var drop = false
                if lastSequenceForKey <= smallestSnapshot {
                    drop = true // hidden by a newer version every view sees
                } else if t & 0xFF == UInt64(ValueKind.deletion.rawValue) && seq <= smallestSnapshot
                            && (plan.full || isBaseLevel(user, below: plan.outputLevel, in: inputVersion)) {
                    drop = true // tombstone with nothing older below it
                }
                lastSequenceForKey = seq
                if !drop {
                    if builder == nil {
                        builderNumber = mu.withLock { () -> UInt64 in
                            let n = nextFileNumber
                            nextFileNumber += 1
                            return n
                        }
                        builder = try TableBuilder(path: FileNames.table(directory, builderNumber),
                                                   filter: plan.outputLevel != Version.bottomLevel)
                    }
                    try builder!.add(k, it.value)
                }
                try it.advance()
            }
            try finishOutput()
        } catch {
            for (_, t) in outputs { t.markObsolete() }
            outputs.removeAll()
            throw error
        }
        return outputs
    }
}
