import EngineAPI
import LMDBEngine
import LSMEngine

/// `data-dir-marker`: the small files of a data directory that name something else, parsed from
/// any bytes. Byte 0 modulo 3 picks the file, the rest is its contents:
///   0  `member/engine` (EngineMarker: the engine that wrote the store), as rusd reads it (its
///      first `EngineMarker.readLimit` bytes), checked against "lmdb"
///   1  the lsm engine's CURRENT (the live manifest's name)
///   2  the lmdb engine's GENERATION (the live generation's name)
/// The LSM-STORE marker of lsm stores is only tested for existence, so it has no parser here.
///
/// Contract: no trap; a refusal names the file (or, for an engine marker naming another engine,
/// the data directory, as rusd always said) and carries no terminal control bytes; what is
/// accepted is a name of the form its writer produces, so nothing else is opened in its place:
/// an engine name, `MANIFEST-` and decimal digits, `gen-` and decimal digits below Int.max
/// (the next generation, `+ 1`, must exist).
enum MarkerTarget {
    static let target = FuzzTarget(name: "data-dir-marker", run: run)

    static let dataDirectory = "/data"
    static let markerPath = "/data/member/engine"

    static func run(_ input: [UInt8], _ scratch: String) throws {
        guard let mode = input.first else { return }
        let contents = Array(input.dropFirst())
        switch mode % 3 {
        case 0: try engineMarker(Array(contents.prefix(EngineMarker.readLimit)))
        case 1: try lsmCurrent(contents)
        default: try lmdbGeneration(contents)
        }
    }

    static func engineMarker(_ contents: [UInt8]) throws {
        let recorded = EngineMarker.recordedEngine(contents)
        do {
            try EngineMarker.check(contents, engine: "lmdb", markerPath: markerPath, dataDirectory: dataDirectory)
            guard recorded == "lmdb" else { throw FuzzFinding("accepted as lmdb, but records \(String(describing: recorded))") }
        } catch let refusal as EngineMarker.Refusal {
            let text = refusal.description
            if let recorded {
                guard recorded != "lmdb", text.contains(dataDirectory), text.contains("'\(recorded)'") else {
                    throw FuzzFinding("refusal of a marker naming \(recorded) says: \(text)")
                }
            } else if !text.contains(markerPath) {
                throw FuzzFinding("refusal of a damaged marker does not name the file: \(text)")
            }
            guard text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw FuzzFinding("refusal carries control characters: \(text.debugDescription)")
            }
        }
        if let recorded {
            // A recorded name is one rusd could have written, and is accepted by its engine.
            guard recorded.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
                  EngineMarker.recordedEngine(EngineMarker.contents(for: recorded)) == recorded else {
                throw FuzzFinding("recorded engine \(recorded.debugDescription) does not round-trip")
            }
            do {
                try EngineMarker.check(contents, engine: recorded, markerPath: markerPath, dataDirectory: dataDirectory)
            } catch {
                throw FuzzFinding("marker recording \(recorded) refused for that engine: \(error)")
            }
        }
    }

    static func lsmCurrent(_ contents: [UInt8]) throws {
        let path = "/store/CURRENT"
        let name: String
        do {
            name = try CurrentFile.manifestName(contents, path: path)
        } catch {
            try expectCorruption(error, path: path)
            return
        }
        let digits = name.utf8.dropFirst("MANIFEST-".utf8.count)
        guard name.hasPrefix("MANIFEST-"), !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              UInt64(String(decoding: digits, as: UTF8.self)) != nil else {
            throw FuzzFinding("CURRENT accepted naming \(name.debugDescription), not a manifest file name")
        }
    }

    static func lmdbGeneration(_ contents: [UInt8]) throws {
        let path = "/store/GENERATION"
        let generation: Int
        do {
            generation = try LMDBEngine.generation(pointerFile: contents, path: path)
        } catch {
            try expectCorruption(error, path: path)
            return
        }
        var text = contents[...]
        while let last = text.last, last == 0x0A || last == 0x0D || last == 0x20 { text = text.dropLast() }
        let digits = text.dropFirst(4)
        guard text.starts(with: Array("gen-".utf8)), !digits.isEmpty, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              generation > 0, generation < Int.max, Int(String(decoding: digits, as: UTF8.self)) == generation else {
            throw FuzzFinding("GENERATION accepted as generation \(generation) from \(String(decoding: contents, as: UTF8.self).debugDescription)")
        }
    }

    /// A refusal must be `.corruption` naming the file.
    static func expectCorruption(_ error: any Error, path: String) throws {
        guard let e = error as? EngineError, e.kind == .corruption, e.path == path else {
            throw FuzzFinding("error without the file: \(error)")
        }
    }
}
