extension EngineConformance {
    /// What was written (puts, overwrites, deletes; synced or not) is there after close and
    /// reopen; reopening with createIfMissing=false works; a missing store is `.notFound`.
    public func checkPersistenceAcrossReopen() throws {
        let check = "persistenceAcrossReopen"
        try withDirectory(check) { dir in
            var model: [[UInt8]: [UInt8]] = [:]
            var rng = random(7)
            var engine = try open(dir, EngineOptions())
            defer { try? engine.close() }
            for round in 0..<3 {
                for b in 0..<20 {
                    var batch = WriteBatch()
                    for _ in 0..<10 {
                        let key = bytes("p/" + pad(Int(rng.next() % 300), 3))
                        if rng.next() % 4 == 0 {
                            batch.delete(key)
                            model[key] = nil
                        } else {
                            let value = rng.bytes(Int(rng.next() % 3000))
                            batch.put(key, value)
                            model[key] = value
                        }
                    }
                    try engine.write(batch, sync: b % 2 == 0)
                }
                try engine.close()
                var options = EngineOptions()
                options.createIfMissing = false
                engine = try open(dir, options)
                try expectContents(engine, model, check, "after reopen #\(round + 1)")
            }
            var options = EngineOptions()
            options.createIfMissing = false
            try expectEngineError(.notFound, check, "opening a missing store with createIfMissing=false") {
                let e = try open(dir + "-missing", options)
                try? e.close()
            }
        }
    }

    /// Stats are plausible: bytes written grows with writes and covers at least the user bytes
    /// written with sync; files take space; live bytes match the data within a factor of 4
    /// after reclaimSpace; entryCount, when given, is exact.
    public func checkStats() throws {
        let check = "stats"
        try withEngine(check) { engine, _ in
            let s0 = try engine.stats()
            var rng = random(8)
            var userBytes = 0
            for b in 0..<20 {
                var batch = WriteBatch()
                for i in 0..<10 { batch.put(bytes("st/" + pad(b * 10 + i, 4)), rng.bytes(4096)) }
                userBytes += batch.byteCount
                try engine.write(batch, sync: true)
            }
            let s1 = try engine.stats()
            try expect(s1.bytesWrittenSinceOpen >= s0.bytesWrittenSinceOpen + UInt64(userBytes), check,
                       "bytesWrittenSinceOpen grew by \(s1.bytesWrittenSinceOpen - s0.bytesWrittenSinceOpen) after \(userBytes) user bytes written with sync")
            try expect(s1.diskBytes > 0, check, "diskBytes is 0 after writing \(userBytes) bytes")
            if let count = s1.entryCount { try expect(count == 200, check, "entryCount \(count), expected 200") }
            try engine.reclaimSpace()
            let s2 = try engine.stats()
            try expect(s2.bytesWrittenSinceOpen >= s1.bytesWrittenSinceOpen, check, "bytesWrittenSinceOpen went down")
            try expect(s2.diskBytes > 0, check, "diskBytes is 0 after reclaimSpace")
            try expect(s2.liveBytes >= UInt64(userBytes / 2) && s2.liveBytes <= UInt64(userBytes * 4 + (4 << 20)), check,
                       "liveBytes \(s2.liveBytes) for \(userBytes) bytes of keys and values")
            var deletes = WriteBatch()
            for i in 0..<100 { deletes.delete(bytes("st/" + pad(i, 4))) }
            try engine.write(deletes, sync: true)
            let s3 = try engine.stats()
            try expect(s3.bytesWrittenSinceOpen > s2.bytesWrittenSinceOpen, check, "bytesWrittenSinceOpen did not grow on deletes")
            if let count = s3.entryCount { try expect(count == 100, check, "entryCount \(count) after deleting half, expected 100") }
            log("\(engineName): stats after \(userBytes) user bytes: written \(s1.bytesWrittenSinceOpen), disk \(s1.diskBytes); after reclaimSpace: live \(s2.liveBytes), disk \(s2.diskBytes)")
        }
    }

    /// reclaimSpace keeps every entry, runs while other threads read (through old views and
    /// fresh gets), leaves older views intact, and the store works normally afterwards.
    public func checkReclaimSpace() throws {
        let check = "reclaimSpace"
        try withDirectory(check) { dir in
            var engine = try open(dir, EngineOptions())
            defer { try? engine.close() }
            var rng = random(9)
            var model: [[UInt8]: [UInt8]] = [:]
            for b in 0..<30 {
                var batch = WriteBatch()
                for i in 0..<10 {
                    let key = bytes("r/" + pad(b * 10 + i, 4))
                    let value = rng.bytes(1024 + Int(rng.next() % 1024))
                    batch.put(key, value)
                    model[key] = value
                }
                try engine.write(batch, sync: false)
            }
            var churn = WriteBatch()
            for (i, key) in model.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).enumerated() {
                if i % 3 != 0 {
                    churn.delete(key)
                    model[key] = nil
                } else {
                    model[key] = rng.bytes(100)
                    churn.put(key, model[key]!)
                }
            }
            try engine.write(churn, sync: true)
            let before = model
            let mainView = try engine.readView()
            let readerView = try engine.readView()
            let done = EngineLocked(false)
            let reads = EngineLocked(0)
            let current = engine
            let check2 = check
            try runOnThreads([
                {
                    defer { done.withLock { $0 = true } }
                    try current.reclaimSpace()
                },
                {
                    var rounds = 0
                    while !done.withLock({ $0 }) || rounds < 2 {
                        rounds += 1
                        try expectContents(readerView, before, check2, "a view read during reclaimSpace")
                        for (key, value) in before.prefix(20) {
                            let got = try current.get(key)
                            if got != value { throw fail(check2, "get(\(hex(key))) during reclaimSpace returned \(describe(got))") }
                        }
                        reads.withLock { $0 += 1 }
                    }
                },
            ])
            try expectContents(mainView, before, check, "a view taken before reclaimSpace, read after it")
            try expectContents(engine, model, check, "after reclaimSpace")
            var more = WriteBatch()
            more.put(bytes("r/after"), bytes("x"))
            try engine.write(more, sync: true)
            model[bytes("r/after")] = bytes("x")
            try engine.reclaimSpace()
            try engine.close()
            engine = try open(dir, EngineOptions())
            try expectContents(engine, model, check, "after reclaimSpace and reopen")
            log("\(engineName): reclaimSpace ran while a reader completed \(reads.withLock { $0 }) full read rounds")
        }
    }

    /// After close every operation throws `.closed` (also on views taken before); close is
    /// idempotent; releasing a view after close is safe.
    public func checkClosedEngine() throws {
        let check = "closedEngine"
        try withDirectory(check) { dir in
            let engine = try open(dir, EngineOptions())
            var batch = WriteBatch()
            batch.put(bytes("k"), bytes("v"))
            try engine.write(batch, sync: true)
            var view: (any ReadView)? = try engine.readView()
            let otherView = try engine.readView()
            try engine.close()
            try expectEngineError(.closed, check, "get after close") { _ = try engine.get(bytes("k")) }
            try expectEngineError(.closed, check, "readView after close") { _ = try engine.readView() }
            try expectEngineError(.closed, check, "write after close") { try engine.write(batch, sync: true) }
            try expectEngineError(.closed, check, "reclaimSpace after close") { try engine.reclaimSpace() }
            try expectEngineError(.closed, check, "stats after close") { _ = try engine.stats() }
            try expectEngineError(.closed, check, "view get after close") { _ = try view!.get(bytes("k")) }
            try expectEngineError(.closed, check, "view scan after close") { _ = try view!.entries(.all) }
            view = nil  // released after close
            try engine.close()  // idempotent
            try runOnThreads([{ _ = try? otherView.get(bytes("k")) }])  // used from another thread after close
            // An engine released without close (deinit) while a view is alive: the view either
            // still reads correctly or throws .closed; the directory can be opened again.
            var dropped: (any StorageEngine)? = try open(dir, EngineOptions())
            let orphan = try dropped!.readView()
            dropped = nil
            do {
                let got = try orphan.get(bytes("k"))
                try expect(got == bytes("v"), check, "a view outliving its released engine read \(describe(got))")
            } catch let e as EngineError where e.kind == .closed {}
            let reopened = try open(dir, EngineOptions())
            defer { try? reopened.close() }
            try expect(try reopened.get(bytes("k")) == bytes("v"), check, "data lost by close")
        }
    }
}
