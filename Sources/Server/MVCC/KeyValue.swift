/// One version of a key, as the store returns it (the MVCC twin of etcd's mvccpb.KeyValue).
public struct KeyValue: Sendable, Hashable {
    public var key: [UInt8]
    public var value: [UInt8]
    /// Main revision of the put that created this generation of the key.
    public var createRevision: Int64
    /// Main revision of the last change of the key.
    public var modRevision: Int64
    /// Number of puts since creation (1 after the creating put).
    public var version: Int64
    /// Attached lease ID, 0 for none.
    public var lease: Int64

    public init(key: [UInt8], value: [UInt8], createRevision: Int64, modRevision: Int64,
                version: Int64, lease: Int64) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}

/// A change, delivered to commit observers (the future watch hub).
public struct Event: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case put, delete }
    public var kind: Kind
    /// For `.put`: the new version. For `.delete`: the key with `modRevision` = the deleting
    /// revision and every other field zero (as etcd's watch reports deletions).
    public var kv: KeyValue
    /// The version the change replaced (nil when the key did not exist).
    public var prevKV: KeyValue?

    public init(kind: Kind, kv: KeyValue, prevKV: KeyValue?) {
        self.kind = kind
        self.kv = kv
        self.prevKV = prevKV
    }
}

/// Every change of one main revision, in sub-revision order.
public struct RevisionEvents: Sendable {
    public var revision: Int64
    public var events: [Event]
    /// Whether the events carry their previous versions (`prevKV`). The writer leaves them out
    /// while the observer wants none (`MVCCStore.setPreviousValuesWanted`).
    public var previousIncluded: Bool = true

    public init(revision: Int64, events: [Event], previousIncluded: Bool = true) {
        self.revision = revision
        self.events = events
        self.previousIncluded = previousIncluded
    }
}
