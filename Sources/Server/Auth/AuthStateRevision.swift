extension AuthState {
    /// This state with its revision set to `revision`. For a restore from a snapshot: etcd keeps
    /// the auth revision the snapshot recorded (`auth/authRevision`), while rebuilding the state
    /// through its mutations counts its own.
    public func withRevision(_ revision: UInt64) -> AuthState {
        var s = self
        s.revision = revision
        return s
    }
}
