import EtcdProto
import XCTest
@testable import EtcdAPI

final class AlarmAndQuotaTests: XCTestCase {
    /// etcd's alarm store semantics: activate is idempotent, GET filters by type (NONE: all),
    /// deactivate answers with the cleared alarm or nothing.
    func testAlarmList() {
        let alarms = AlarmList()
        XCTAssertNil(alarms.activate(.none, memberID: 1))
        XCTAssertEqual(alarms.activate(.nospace, memberID: 1)?.alarm, .nospace)
        alarms.activate(.nospace, memberID: 1)
        alarms.activate(.corrupt, memberID: 1)
        XCTAssertEqual(alarms.get().map(\.alarm), [.nospace, .corrupt])
        XCTAssertEqual(alarms.get(.corrupt).map(\.alarm), [.corrupt])
        XCTAssertTrue(alarms.noSpace)
        XCTAssertNil(alarms.deactivate(.nospace, memberID: 2))
        XCTAssertEqual(alarms.deactivate(.nospace, memberID: 1)?.memberID, 1)
        XCTAssertFalse(alarms.noSpace)
        XCTAssertEqual(AlarmList.describe(alarms.get()[0]), "memberID:1 alarm:CORRUPT ")
    }

    /// NOSPACE refuses txns with a put in any branch, nested ones included, and nothing else.
    func testTxnsThatAddData() {
        func op(_ r: Etcdserverpb_RequestOp.OneOf_Request) -> Etcdserverpb_RequestOp {
            var o = Etcdserverpb_RequestOp()
            o.request = r
            return o
        }
        var readOnly = Etcdserverpb_TxnRequest()
        readOnly.success = [op(.requestRange(Etcdserverpb_RangeRequest()))]
        readOnly.failure = [op(.requestDeleteRange(Etcdserverpb_DeleteRangeRequest()))]
        XCTAssertFalse(SpaceQuota.adds(readOnly))
        var withPut = Etcdserverpb_TxnRequest()
        withPut.failure = [op(.requestPut(Etcdserverpb_PutRequest()))]
        XCTAssertTrue(SpaceQuota.adds(withPut))
        var nested = Etcdserverpb_TxnRequest()
        nested.success = [op(.requestTxn(readOnly)), op(.requestTxn(withPut))]
        XCTAssertTrue(SpaceQuota.adds(nested))
        nested.success = [op(.requestTxn(readOnly))]
        XCTAssertFalse(SpaceQuota.adds(nested))
    }

    func testHealthQueryParsing() {
        XCTAssertEqual(HTTPEndpoints.queryValues("/health?exclude=NOSPACE&exclude=CORRUPT&x=1", "exclude"), ["NOSPACE", "CORRUPT"])
        XCTAssertEqual(HTTPEndpoints.queryValues("/health", "exclude"), [])
    }
}
