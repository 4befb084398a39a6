import Auth
import EtcdProto
import EtcdServer
import SwiftProtobuf

/// A log entry's bytes in `rusd_log.entry`:
///
///     [format = 1] [kind: 1 byte] [proposal: 8 bytes big-endian] [the request]
///     [format = 2] [kind: 1 byte] [proposal: 8 bytes big-endian] [identity] [the request]
///
/// Format 2 (schema version 3) carries who the request acts as (`RequestIdentity.wireBytes`:
/// auth revision u64, user name), checked again when the entry is applied (etcd's
/// RequestHeader username + auth_revision); format 1 entries carry none (written before, or
/// made by the server itself, such as the revokes of expired leases). Kind 9 (schema version
/// 3) is a simple token issued by Authenticate (`SimpleTokenGrant.wireBytes`).
/// The request is etcd's protobuf message for KV and lease entries, and an auth change's own
/// versioned encoding (`AuthState.Mutation.wireBytes`, passwords already hashed) for auth
/// entries (kind 7, schema version 2); kind 8 is an alarm change (etcdserverpb.AlarmRequest).
/// `proposal` is chosen by the proposing member (random start, then +1) so that it can find
/// its own entries when they come back from the log. A reader refuses a format or kind it does
/// not know: skipping an entry would make this member diverge from the others.
enum EntryCodec {
    static let format: UInt8 = 1
    /// An entry whose request carries an identity.
    static let identifiedFormat: UInt8 = 2

    private enum Kind: UInt8 {
        case put = 1, deleteRange, txn, compact, leaseGrant, leaseRevoke, auth, alarm
        case authenticate = 9
    }

    /// The entry's bytes.
    static func encode(_ request: ApplyRequest, proposal: UInt64) throws(EtcdError) -> [UInt8] {
        var out: [UInt8] = [format, 0]
        out.reserveCapacity(64)
        withUnsafeBytes(of: proposal.bigEndian) { out.append(contentsOf: $0) }
        var request = request
        if case .identified(let identity, let inner) = request {
            out[0] = identifiedFormat
            out += identity.wireBytes()
            request = inner
        }
        do {
            switch request {
            case .put(let m): out[1] = Kind.put.rawValue; out += try m.serializedBytes() as [UInt8]
            case .deleteRange(let m): out[1] = Kind.deleteRange.rawValue; out += try m.serializedBytes() as [UInt8]
            case .txn(let m): out[1] = Kind.txn.rawValue; out += try m.serializedBytes() as [UInt8]
            case .compact(let m): out[1] = Kind.compact.rawValue; out += try m.serializedBytes() as [UInt8]
            case .leaseGrant(let m): out[1] = Kind.leaseGrant.rawValue; out += try m.serializedBytes() as [UInt8]
            case .leaseRevoke(let m): out[1] = Kind.leaseRevoke.rawValue; out += try m.serializedBytes() as [UInt8]
            case .auth(let m): out[1] = Kind.auth.rawValue; out += m.wireBytes()
            case .alarm(let m): out[1] = Kind.alarm.rawValue; out += try m.serializedBytes() as [UInt8]
            case .authenticate(let g): out[1] = Kind.authenticate.rawValue; out += g.wireBytes()
            case .identified: throw EtcdError(.internalError, "rusd: cannot encode an identified request inside another")
            }
        } catch let e as EtcdError {
            throw e
        } catch {
            throw EtcdError(.internalError, "rusd: cannot encode a log entry: \(error)")
        }
        return out
    }

    /// The proposal number and request of an entry, or why it cannot be read.
    static func decode(_ bytes: [UInt8]) throws(SharedLogError) -> (proposal: UInt64, request: ApplyRequest) {
        guard bytes.count >= 10 else { throw .corruptEntry(index: 0, reason: "\(bytes.count) bytes, shorter than a header") }
        guard bytes[0] == format || bytes[0] == identifiedFormat else {
            throw .corruptEntry(index: 0, reason: "entry format \(bytes[0]) (this rusd reads formats \(format) and \(identifiedFormat))")
        }
        guard let kind = Kind(rawValue: bytes[1]) else { throw .corruptEntry(index: 0, reason: "unknown entry kind \(bytes[1])") }
        var proposal: UInt64 = 0
        for b in bytes[2 ..< 10] { proposal = proposal << 8 | UInt64(b) }
        var identity: RequestIdentity?
        var bodyStart = 10
        if bytes[0] == identifiedFormat {
            guard let decoded = RequestIdentity.decode(prefixOf: Array(bytes[10...])) else {
                throw .corruptEntry(index: 0, reason: "undecodable identity")
            }
            identity = decoded.identity
            bodyStart += decoded.end
        }
        let body = Array(bytes[bodyStart...])
        do {
            let request: ApplyRequest = switch kind {
            case .put: .put(try Etcdserverpb_PutRequest(serializedBytes: body))
            case .deleteRange: .deleteRange(try Etcdserverpb_DeleteRangeRequest(serializedBytes: body))
            case .txn: .txn(try Etcdserverpb_TxnRequest(serializedBytes: body))
            case .compact: .compact(try Etcdserverpb_CompactionRequest(serializedBytes: body))
            case .leaseGrant: .leaseGrant(try Etcdserverpb_LeaseGrantRequest(serializedBytes: body))
            case .leaseRevoke: .leaseRevoke(try Etcdserverpb_LeaseRevokeRequest(serializedBytes: body))
            case .auth: .auth(try authMutation(body))
            case .alarm: .alarm(try Etcdserverpb_AlarmRequest(serializedBytes: body))
            case .authenticate: .authenticate(try tokenGrant(body))
            }
            return (proposal, identity.map { .identified($0, request) } ?? request)
        } catch {
            throw .corruptEntry(index: 0, reason: "undecodable request: \(error)")
        }
    }

    private struct UndecodableAuthChange: Error, CustomStringConvertible {
        var size: Int
        var description: String { "an auth change of \(size) bytes in no format this rusd reads" }
    }

    private static func authMutation(_ body: [UInt8]) throws -> AuthState.Mutation {
        guard let m = AuthState.Mutation(wireBytes: body) else { throw UndecodableAuthChange(size: body.count) }
        return m
    }

    private struct UndecodableTokenGrant: Error, CustomStringConvertible {
        var size: Int
        var description: String { "a token grant of \(size) bytes in no format this rusd reads" }
    }

    private static func tokenGrant(_ body: [UInt8]) throws -> SimpleTokenGrant {
        guard let g = SimpleTokenGrant(wireBytes: body) else { throw UndecodableTokenGrant(size: body.count) }
        return g
    }
}
