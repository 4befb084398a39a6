/// A point in the store's history, as in etcd: `main` is the revision of one write transaction
/// (the store revision clients see), `sub` numbers the changes inside that transaction (0, 1, …).
/// Ordered by main, then sub.
public struct Revision: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var main: Int64
    public var sub: Int64

    public init(main: Int64, sub: Int64) {
        self.main = main
        self.sub = sub
    }

    public static func < (a: Revision, b: Revision) -> Bool {
        a.main != b.main ? a.main < b.main : a.sub < b.sub
    }

    public var description: String { "\(main)_\(sub)" }
}
