import EtcdServer
import GRPCTransport

extension GRPCStatus {
    /// etcd's error as a gRPC status: the same code and message etcd's clients match on.
    init(_ error: EtcdError) {
        self.init(GRPCStatus.Code(rawValue: error.code.rawValue), error.message)
    }
}

extension UnaryResponder {
    /// Completes with a result computed off the event loop (e.g. on the applier thread after a
    /// group commit): hops to the call's event loop first, so encoding and writing happen there
    /// and the applier is free for the next group at once. The hop goes through the loop's
    /// inbox: the completions of one group reach each loop as one task.
    func complete(_ result: Result<Response, EtcdError>, on context: CallContext) {
        context.inbox.execute { self.complete(now: result) }
    }

    /// Completes with a result computed on the caller's thread (already on the event loop).
    func complete(now result: Result<Response, EtcdError>) {
        switch result {
        case .success(let response): succeed(response)
        case .failure(let error): fail(GRPCStatus(error))
        }
    }
}

extension EtcdServer {
    /// The caller of a call: its `token` metadata, else (as etcd) the common name of its
    /// verified TLS client certificate.
    /// `tokenCheckedWhenDisabled`: see `caller(token:commonName:tokenCheckedWhenDisabled:)`.
    func caller(_ context: CallContext, tokenCheckedWhenDisabled: Bool = true) throws(EtcdError) -> AuthCaller {
        try caller(token: context.metadata["token"], commonName: context.peerCommonName,
                   tokenCheckedWhenDisabled: tokenCheckedWhenDisabled)
    }
}
