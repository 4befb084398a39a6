extension EngineConformance {
    /// A damaged data file is refused with `.corruption` (at open, or on the reads that touch
    /// the damage), never served as wrong data: the largest data file replaced by garbage; the
    /// same file truncated to half; and, for engines with checksums, 8 bytes flipped in its
    /// middle. Engines without data checksums document the flipped-byte case (logged).
    public func checkCorruptionRefused() throws {
        let check = "corruptionRefused"
        try damageAndExpectRefusal(check, "replaced by garbage") { file, rng in
            try PosixFiles.write(rng.bytes(Int(file.size)), to: file.path, sync: true)
        }
        try damageAndExpectRefusal(check, "truncated to half") { file, _ in
            try PosixFiles.truncateFile(file.path, to: file.size / 2)
        }
        switch corruptionDetection {
        case .checksums:
            try damageAndExpectRefusal(check, "with 8 bytes flipped in the middle") { file, _ in
                let offset = file.size / 2
                var middle = try PosixFiles.readFile(file.path)[Int(offset)..<Int(offset) + 8].map { $0 }
                for i in middle.indices { middle[i] ^= 0x5A }
                try PosixFiles.write(middle, to: file.path, at: offset, sync: true)
            }
        case .structuralOnly(let reason):
            log("\(engineName): a flipped byte inside stored data is NOT detected and was not checked: \(reason)")
        }
    }

    private func damageAndExpectRefusal(_ check: String, _ damage: String,
                                        _ corrupt: (FileEntry, inout SplitMix64) throws -> Void) throws {
        try withDirectory(check) { dir in
            var rng = random(11)
            var model: [[UInt8]: [UInt8]] = [:]
            do {
                let engine = try open(dir, EngineOptions())
                defer { try? engine.close() }
                for b in 0..<15 {
                    var batch = WriteBatch()
                    for i in 0..<10 {
                        let key = bytes("c/" + pad(b * 10 + i, 4))
                        let value = rng.bytes(8192)
                        batch.put(key, value)
                        model[key] = value
                    }
                    try engine.write(batch, sync: true)
                }
                try engine.reclaimSpace()
                try engine.close()
            }
            let files = try PosixFiles.listFiles(dir).filter { !$0.name.lowercased().contains("lock") }
            guard let target = files.max(by: { $0.size < $1.size }), target.size >= 4096 else {
                throw fail(check, "no data file found in \(dir)")
            }
            try corrupt(target, &rng)

            let engine: any StorageEngine
            do {
                engine = try open(dir, EngineOptions())
            } catch let e as EngineError {
                try expect(e.kind == .corruption, check, "data file \(damage): open threw \(e), expected kind corruption")
                log("\(engineName): \(target.name) \(damage): refused at open: \(e)")
                return
            }
            defer { try? engine.close() }
            var refusals = 0
            var firstRefusal = ""
            for (key, value) in model {
                do {
                    let got = try engine.get(key)
                    try expect(got == value, check, "data file \(damage): get(\(hex(key))) served wrong data \(describe(got))")
                } catch let e as EngineError where e.kind == .corruption {
                    refusals += 1
                    if firstRefusal.isEmpty { firstRefusal = "\(e)" }
                }
            }
            do {
                let entries = try engine.readView().entries(.all)
                try expectSame(entries, sortedEntries(model), check, "data file \(damage): a full scan served wrong data")
            } catch let e as EngineError where e.kind == .corruption {
                refusals += 1
                if firstRefusal.isEmpty { firstRefusal = "\(e)" }
            }
            try expect(refusals > 0, check, "data file \(target.path) \(damage): every read succeeded with the right data, so the damage went unnoticed (is that file the data?)")
            log("\(engineName): \(target.name) \(damage): opened, then \(refusals) read(s) refused with corruption, e.g. \(firstRefusal)")
        }
    }
}
