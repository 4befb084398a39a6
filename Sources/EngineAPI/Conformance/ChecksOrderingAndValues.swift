extension EngineConformance {
    /// Keys order bytewise (memcmp, shorter prefix first); 0x00 and 0xFF are ordinary bytes;
    /// keys up to 500 bytes work. An empty key either works like any other or is refused with
    /// `.invalidArgument` without applying any of its batch.
    public func checkBytewiseOrdering() throws {
        let check = "bytewiseOrdering"
        try withEngine(check) { engine, _ in
            var keys: [[UInt8]] = [
                [0x00], [0x00, 0x00], [0x00, 0x01], [0x00, 0xFF], [0x01], [0x7F], [0x80], [0x80, 0x00],
                [0xFE, 0xFF], [0xFF], [0xFF, 0x00], [0xFF, 0xFF], [0xFF, 0xFF, 0xFF],
                bytes("a"), bytes("a") + [0x00], bytes("a") + [0x01], bytes("ab"), bytes("b"),
                [UInt8](repeating: 0x61, count: 499) + [0x00], [UInt8](repeating: 0x61, count: 499) + [0xFF],
                [UInt8](repeating: 0x61, count: 500), [UInt8](repeating: 0xFF, count: 500),
            ]
            var rng = random(1)
            keys.shuffle(using: &rng)
            var model: [[UInt8]: [UInt8]] = [:]
            var batch = WriteBatch()
            for (i, key) in keys.enumerated() {
                let value = bytes("value-\(i)") + [0x00, 0xFF]
                model[key] = value
                if i % 3 == 0 {
                    try engine.write({ var b = WriteBatch(); b.put(key, value); return b }(), sync: false)
                } else {
                    batch.put(key, value)
                }
            }
            try engine.write(batch, sync: true)
            try expectContents(engine, model, check, "binary keys")
            // Seeking with a binary bound lands between 0x00-suffixed neighbours.
            let view = try engine.readView()
            let between = try view.entries(KeyRange(start: [0x00, 0x00], end: [0x00, 0xFF]))
            try expectSame(between, [KeyValue(key: [0x00, 0x00], value: model[[0x00, 0x00]]!),
                                     KeyValue(key: [0x00, 0x01], value: model[[0x00, 0x01]]!)],
                           check, "scan [0x0000, 0x00ff)")

            // The empty key.
            var withEmpty = WriteBatch()
            withEmpty.put(bytes("zz-marker"), bytes("m"))
            withEmpty.put([], bytes("empty-key-value"))
            do {
                try engine.write(withEmpty, sync: true)
                model[bytes("zz-marker")] = bytes("m")
                model[[]] = bytes("empty-key-value")
                try expectContents(engine, model, check, "after storing the empty key")
                let first = try engine.readView().entries(.all, limit: 1)
                try expect(first.first?.key == [], check, "the empty key must sort first")
            } catch let e as EngineError where e.kind == .invalidArgument {
                try expect(try engine.get(bytes("zz-marker")) == nil, check,
                           "the batch with an empty key was refused (\(e)) but its other put was applied")
                log("\(engineName): empty keys are refused: \(e.message)")
            }
        }
    }

    /// An empty value is stored and read back as empty, not as absent, also after reopen.
    public func checkEmptyValues() throws {
        let check = "emptyValues"
        try withDirectory(check) { dir in
            var engine = try open(dir, EngineOptions())
            defer { try? engine.close() }
            var batch = WriteBatch()
            batch.put(bytes("e1"), [])
            batch.put(bytes("e2"), [0x00])
            batch.put(bytes("e3"), [])
            try engine.write(batch, sync: true)
            var model: [[UInt8]: [UInt8]] = [bytes("e1"): [], bytes("e2"): [0x00], bytes("e3"): []]
            try expect(try engine.get(bytes("e1")) == [], check, "get of an empty value must return [] (not nil)")
            try expectContents(engine, model, check, "empty values")
            try engine.close()
            engine = try open(dir, EngineOptions())
            try expectContents(engine, model, check, "empty values after reopen")
            var delete = WriteBatch()
            delete.delete(bytes("e1"))
            try engine.write(delete, sync: true)
            model[bytes("e1")] = nil
            try expectContents(engine, model, check, "after deleting an empty value")
        }
    }

    /// Values from 0 bytes to 2 MiB round-trip exactly, through reopen, overwrite and delete.
    public func checkLargeValues() throws {
        let check = "largeValues"
        try withDirectory(check) { dir in
            var engine = try open(dir, EngineOptions())
            defer { try? engine.close() }
            var rng = random(3)
            let sizes = [0, 1, 4095, 4096, 4097, 65_537, 1 << 20, (2 << 20) - 1, 2 << 20]
            var model: [[UInt8]: [UInt8]] = [:]
            var batch = WriteBatch()
            for (i, size) in sizes.enumerated() {
                let key = bytes("large/\(i)")
                let value = rng.bytes(size)
                model[key] = value
                if i % 2 == 0 {
                    batch.put(key, value)
                } else {
                    try engine.write({ var b = WriteBatch(); b.put(key, value); return b }(), sync: true)
                }
            }
            try engine.write(batch, sync: true)
            try expectContents(engine, model, check, "values of \(sizes) bytes")
            try engine.close()
            engine = try open(dir, EngineOptions())
            try expectContents(engine, model, check, "large values after reopen")
            var change = WriteBatch()
            change.put(bytes("large/8"), [7])
            change.delete(bytes("large/7"))
            try engine.write(change, sync: true)
            model[bytes("large/8")] = [7]
            model[bytes("large/7")] = nil
            try expectContents(engine, model, check, "after shrinking and deleting 2 MiB values")
        }
    }

    /// Within a batch later operations on a key win; a batch is all or nothing (a batch past
    /// the size limit is refused with `.full` and none of it is visible; the store stays usable).
    public func checkBatchAtomicity() throws {
        let check = "batchAtomicity"
        try withEngine(check) { engine, _ in
            var seed = WriteBatch()
            seed.put(bytes("c"), bytes("old-c"))
            seed.put(bytes("e"), bytes("old-e"))
            try engine.write(seed, sync: true)
            var batch = WriteBatch()
            batch.put(bytes("a"), bytes("1"))
            batch.put(bytes("a"), bytes("2"))
            batch.delete(bytes("a"))
            batch.put(bytes("a"), bytes("3"))
            batch.put(bytes("b"), bytes("1"))
            batch.delete(bytes("b"))
            batch.delete(bytes("c"))
            batch.delete(bytes("never-existed"))
            batch.put(bytes("d"), bytes("x"))
            batch.delete(bytes("e"))
            batch.put(bytes("e"), bytes("new-e"))
            try engine.write(batch, sync: true)
            try expectContents(engine, [bytes("a"): bytes("3"), bytes("d"): bytes("x"), bytes("e"): bytes("new-e")],
                               check, "later operations on the same key win")
            try engine.write(WriteBatch(), sync: true)  // an empty batch is fine
        }

        var limited = EngineOptions()
        limited.maxSizeBytes = 8 << 20
        try withEngine(check + "-limit", options: limited) { engine, _ in
            var small = WriteBatch()
            small.put(bytes("before"), bytes("kept"))
            try engine.write(small, sync: true)
            var rng = random(4)
            var huge = WriteBatch()
            huge.put(bytes("before"), bytes("overwritten?"))
            for i in 0..<16 { huge.put(bytes("t/\(i)"), rng.bytes(1 << 20)) }
            try expectEngineError(.full, check, "a 16 MiB batch with maxSizeBytes = 8 MiB") {
                try engine.write(huge, sync: true)
            }
            try expectContents(engine, [bytes("before"): bytes("kept")], check,
                               "nothing of a refused batch may be visible")
            var after = WriteBatch()
            after.put(bytes("after"), bytes("ok"))
            try engine.write(after, sync: true)
            try expectContents(engine, [bytes("before"): bytes("kept"), bytes("after"): bytes("ok")], check,
                               "small writes work after a refused batch")
        }
    }
}
