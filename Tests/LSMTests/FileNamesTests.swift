import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// Directory entry names: only what `FileNames.pad` writes is ours; anything else is left alone.
final class FileNamesTests: XCTestCase {
    func testNumbersAreDigitsOnly() {
        XCTAssertTrue(FileNames.parse("000001.log") == (.log, 1))
        XCTAssertTrue(FileNames.parse("000123.sst") == (.table, 123))
        XCTAssertTrue(FileNames.parse("MANIFEST-000007") == (.manifest, 7))
        XCTAssertTrue(FileNames.parse("9999999999999999999.log") == (.log, 9_999_999_999_999_999_999))
        for foreign in ["+1.log", "-1.log", " 1.log", "1 .sst", ".log", "0x1.log", "MANIFEST-+2", "MANIFEST-",
                        "18446744073709551615.log", "00000000000000000001.sst", "1.log\u{0}", "١.log"] {
            XCTAssertTrue(FileNames.parse(foreign) == (.other, 0), foreign)
        }
    }

    /// CURRENT names a manifest exactly as `FileNames.parse` reads one; anything else is refused
    /// as corruption naming the file.
    func testCurrentNamesOnlyWhatParseTakesForAManifest() throws {
        XCTAssertEqual(try CurrentFile.manifestName(Array("MANIFEST-000007\n".utf8), path: "C"), "MANIFEST-000007")
        XCTAssertEqual(try CurrentFile.manifestName(Array("\nMANIFEST-9999999999999999999".utf8), path: "C"),
                       "MANIFEST-9999999999999999999")
        for bad in ["MANIFEST-+7\n", "MANIFEST-18446744073709551615\n", "MANIFEST-000007.tmp\n", "MANIFEST-\n",
                    "LSM-STORE\n", "000007.log\n", "MANIFEST-000007\u{0}x\n", "MANIFEST-0 7\n", ""] {
            XCTAssertThrowsError(try CurrentFile.manifestName(Array(bad.utf8), path: "/d/CURRENT"), bad.debugDescription) {
                XCTAssertTrue("\($0)".contains("/d/CURRENT"), "\($0)")
            }
        }
    }

    /// A file named like a log but with a sign (which `UInt64("+1")` accepts) was replayed as
    /// log 1 and then deleted as obsolete; it is another program's file and must survive untouched.
    func testSignedLogNameIsNeitherReplayedNorDeleted() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
        try engine.put("k", "v", sync: true)
        try engine.close()
        let foreign = dir.store + "/+1.log"
        try Data("not a log".utf8).write(to: URL(fileURLWithPath: foreign))
        let again = try LSMEngine.open(directory: dir.store, options: smallOptions())
        XCTAssertEqual(try again.string("k"), "v")
        try again.close()
        XCTAssertEqual(try String(contentsOfFile: foreign, encoding: .utf8), "not a log")
    }
}
