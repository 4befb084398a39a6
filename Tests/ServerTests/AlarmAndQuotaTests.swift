import EtcdProto
import EtcdServer
import InMemoryEngine
import SwiftProtobuf
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

    func alarmSync(_ s: EtcdServer, _ action: Etcdserverpb_AlarmRequest.AlarmAction, _ type: Etcdserverpb_AlarmType,
                   member: UInt64) throws -> [Etcdserverpb_AlarmMember] {
        var r = Etcdserverpb_AlarmRequest()
        r.action = action
        r.alarm = type
        r.memberID = member
        return try s.wait { s.alarm(r, completion: $0) }.alarms
    }

    /// Alarms go through the log into the store (etcd's alarm store): a new server on the same
    /// engine starts with them raised; a deactivation is persisted too; answers as etcd's
    /// applier (the alarm changed, or nothing).
    func testAlarmsArePersistedThroughTheLog() throws {
        let engine = InMemoryEngine()
        do {
            let s = try makeServer(engine)
            XCTAssertEqual(try alarmSync(s, .activate, .nospace, member: 7).map(\.memberID), [7])
            XCTAssertEqual(try alarmSync(s, .activate, .nospace, member: 7).map(\.memberID), [7])
            XCTAssertEqual(try alarmSync(s, .activate, .corrupt, member: 0x5678).map(\.alarm), [.corrupt])
            XCTAssertEqual(try alarmSync(s, .deactivate, .nospace, member: 8), [])
            XCTAssertTrue(s.alarms.noSpace)
            s.close()
        }
        do {
            let s = try makeServer(engine)
            XCTAssertEqual(Set(s.alarms.get().map { "\($0.memberID)/\($0.alarm)" }), ["7/nospace", "22136/corrupt"])
            XCTAssertTrue(s.alarms.noSpace)
            XCTAssertEqual(try alarmSync(s, .deactivate, .nospace, member: 7).map(\.alarm), [.nospace])
            s.close()
        }
        let s = try makeServer(engine)
        defer { s.close() }
        XCTAssertEqual(s.alarms.get().map(\.alarm), [.corrupt])
        XCTAssertFalse(s.alarms.noSpace)
    }

    /// The record key holds the AlarmMember as protobuf marshals it (etcd's `alarm` bucket key):
    /// SwiftProtobuf judges the hand encoding.
    func testAlarmRecordKeyIsTheMarshalledAlarmMember() throws {
        for (id, type) in [(UInt64(0), Etcdserverpb_AlarmType.nospace), (1, .corrupt), (UInt64.max, .nospace),
                           (0x8e5e_1c4a_3f2b_9d01, .UNRECOGNIZED(300))] {
            var m = Etcdserverpb_AlarmMember()
            m.memberID = id
            m.alarm = type
            let key = AlarmList.recordKey(m)
            XCTAssertEqual(Array(key.prefix(AlarmList.recordPrefix.count)), AlarmList.recordPrefix)
            let body = Array(key.dropFirst(AlarmList.recordPrefix.count))
            XCTAssertEqual(body, try m.serializedBytes() as [UInt8])
            XCTAssertEqual(try Etcdserverpb_AlarmMember(serializedBytes: body), m)
            XCTAssertEqual(AlarmList.alarm(fromRecordKey: key), m)
            // Anything but exactly that encoding is not an alarm record: a trailing unknown
            // field, a truncated varint, no body.
            XCTAssertNil(AlarmList.alarm(fromRecordKey: key + [0x18, 0x01]))
            if body.count > 1 { XCTAssertNil(AlarmList.alarm(fromRecordKey: Array(key.dropLast()))) }
        }
        XCTAssertNil(AlarmList.alarm(fromRecordKey: AlarmList.recordPrefix))
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
