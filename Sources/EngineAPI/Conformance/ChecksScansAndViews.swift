extension EngineConformance {
    /// Forward and reverse scans over [start, end) (end nil = unbounded), with limits, early
    /// stop from the visitor, bounds between, before and after stored keys, and bounds longer
    /// than any stored key; each compared with the model.
    public func checkScans() throws {
        let check = "scans"
        try withEngine(check) { engine, _ in
            var model: [[UInt8]: [UInt8]] = [:]
            var batch = WriteBatch()
            for i in stride(from: 0, to: 200, by: 2) {
                let key = bytes("s/" + pad(i, 3))
                model[key] = bytes("v\(i)")
                batch.put(key, bytes("v\(i)"))
            }
            for key in [[0x00], [0x00, 0xFF], [0xFF], [0xFF, 0xFF]] as [[UInt8]] {
                model[key] = key
                batch.put(key, key)
            }
            try engine.write(batch, sync: true)
            let long = [UInt8](repeating: 0x00, count: 600)
            let bounds: [([UInt8], [UInt8]?)] = [
                ([], nil), ([], bytes("s/050")), (bytes("s/010"), bytes("s/020")), (bytes("s/010"), nil),
                (bytes("s/011"), bytes("s/021")), (bytes("s/0105"), bytes("s/0205")), (bytes("s/050"), bytes("s/050")),
                (bytes("s/060"), bytes("s/050")), (bytes("t"), nil), (bytes("s/199"), nil), (bytes("s/198"), nil),
                ([0x00], [0x00, 0xFF]), ([0x00, 0x00], [0x01]), ([0xFF], nil), ([0xFF, 0xFF, 0x00], nil),
                (bytes("s/050") + long, bytes("s/060") + long), (bytes("s/") + long, nil), ([], [0x00]),
                ([0x01], bytes("s/")), (bytes("r"), bytes("s/002") + long),
            ]
            let view = try engine.readView()
            let all = sortedEntries(model)
            for (start, end) in bounds {
                let range = KeyRange(start: start, end: end)
                let inRange = all.filter { range.contains($0.key) }
                for reverse in [false, true] {
                    for limit in [nil, 0, 1, 3, 1000] as [Int?] {
                        var expected = reverse ? Array(inRange.reversed()) : inRange
                        if let limit { expected = Array(expected.prefix(limit)) }
                        let got = try view.entries(range, reverse: reverse, limit: limit)
                        try expectSame(got, expected, check,
                                       "scan [\(hex(start)), \(end.map { hex($0) } ?? "nil")) reverse=\(reverse) limit=\(limit.map(String.init) ?? "nil")")
                    }
                }
            }
            for reverse in [false, true] {
                var seen = 0
                try view.scan(.all, reverse: reverse, limit: nil) { _, _ in
                    seen += 1
                    return seen < 3
                }
                try expect(seen == 3, check, "a visitor returning false must stop the scan (visited \(seen), reverse=\(reverse))")
            }
            let prefix = try view.entries(.prefix(bytes("s/01")))
            try expectSame(prefix, all.filter { $0.key.starts(with: bytes("s/01")) }, check, "prefix scan s/01")
        }
    }

    /// A view sees the store as of its creation while other threads write; views created
    /// during concurrent batches see each batch entirely or not at all.
    public func checkReadViewIsolation() throws {
        let check = "readViewIsolation"
        try withEngine(check) { engine, _ in
            let keyCount = 150
            @Sendable func keys() -> [[UInt8]] { (0..<keyCount).map { bytes("iso/" + pad($0, 4)) } }
            @Sendable func value(_ generation: Int, _ i: Int) -> [UInt8] { bytes("g" + pad(generation, 6) + "/\(i)") }
            @Sendable func generationBatch(_ generation: Int) -> WriteBatch {
                var b = WriteBatch()
                for (i, key) in keys().enumerated() { b.put(key, value(generation, i)) }
                if generation % 2 == 1 { b.put(bytes("iso/odd"), bytes("\(generation)")) } else { b.delete(bytes("iso/odd")) }
                return b
            }
            try engine.write(generationBatch(0), sync: true)
            var initial: [[UInt8]: [UInt8]] = [:]
            for (i, key) in keys().enumerated() { initial[key] = value(0, i) }
            let readerCount = 2
            let views = try (0..<readerCount).map { _ in try engine.readView() }
            let writersDone = EngineLocked(0)
            let viewsChecked = EngineLocked(0)
            let writesPerWriter = 30
            let model = initial
            let check2 = check

            /// Every key of one generation, and iso/odd iff the generation is odd.
            @Sendable func expectOneGeneration(_ entries: [KeyValue], _ context: String) throws {
                let odd = entries.first { $0.key == bytes("iso/odd") }
                let rest = entries.filter { $0.key != bytes("iso/odd") }
                guard rest.count == keyCount, let tag = rest.first?.value.prefix(7) else {
                    throw fail(check2, "\(context): \(rest.count) keys, expected \(keyCount)")
                }
                let generation = Int(String(decoding: tag.dropFirst(), as: UTF8.self)) ?? -1
                for (i, entry) in rest.enumerated() where entry.value != value(generation, i) {
                    throw fail(check2, "\(context): key \(i) has \(describe(entry.value)) but key 0 has generation \(generation): a batch was seen partly")
                }
                if (generation % 2 == 1) != (odd != nil) || (odd != nil && odd!.value != bytes("\(generation)")) {
                    throw fail(check2, "\(context): iso/odd is \(describe(odd?.value)) in generation \(generation): a batch was seen partly")
                }
            }

            var bodies: [@Sendable () throws -> Void] = []
            let lastWritten = EngineLocked([0, 0])
            for w in 0..<2 {
                bodies.append {
                    defer { writersDone.withLock { $0 += 1 } }
                    // At least writesPerWriter batches, and on until the readers have checked
                    // enough fresh views while writes were going on (fast engines finish early).
                    var n = 1
                    while n <= writesPerWriter || (viewsChecked.withLock({ $0 }) < 20 && n < 400) {
                        try engine.write(generationBatch(w * 1000 + n), sync: false)
                        lastWritten.withLock { $0[w] = w * 1000 + n }
                        n += 1
                    }
                }
            }
            for r in 0..<readerCount {
                let old = views[r]
                bodies.append {
                    var rounds = 0
                    while writersDone.withLock({ $0 }) < 2 || rounds < 3 {
                        rounds += 1
                        try expectContents(old, model, check2, "view taken before the writers (round \(rounds))")
                        if try old.get(bytes("iso/odd")) != nil {
                            throw fail(check2, "a view taken before the writers sees iso/odd")
                        }
                        let fresh = try engine.readView()
                        try expectOneGeneration(try fresh.entries(KeyRange.prefix(bytes("iso/"))), "fresh view")
                        let tail = try fresh.entries(KeyRange.prefix(bytes("iso/0")), reverse: true, limit: 10)
                        try expect(tail.count == 10 && Set(tail.map { $0.value.prefix(7) }).count == 1, check2,
                                   "a reverse scan of a fresh view mixes generations")
                        _ = try engine.get(bytes("iso/0000"))
                        viewsChecked.withLock { $0 += 1 }
                    }
                }
            }
            try runOnThreads(bodies)
            let final = try engine.readView().entries(KeyRange.prefix(bytes("iso/")))
            try expectOneGeneration(final, "after the writers")
            let lastGeneration = Int(String(decoding: final[0].value.prefix(7).dropFirst(), as: UTF8.self)) ?? -1
            let lasts = lastWritten.withLock { $0 }
            try expect(lasts.contains(lastGeneration), check,
                       "after both writers the store holds generation \(lastGeneration), expected a writer's last one \(lasts)")
            let batches = lasts[0] + lasts[1] - 1000
            log("\(engineName): read-view isolation: \(viewsChecked.withLock { $0 }) fresh views checked during \(batches) concurrent batches")
        }
    }
}

func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}
