import FuzzTargets

extension FuzzTarget {
    /// The targets that drive an `EtcdServer` (this module), most expensive last.
    public static let server: [FuzzTarget] = [StateMachineTarget.target, ConnectionTarget.target]

    /// Every target: what `swift test` replays (FuzzReplayTests) and campaigns fuzz.
    public static let all: [FuzzTarget] = fileFormats + server
}
