import BBolt

/// `bbolt`: a snapshot file in etcd's format (a bbolt database) to `BBoltReader`, which must
/// read every bucket or throw a `BBoltError` (naming the offset where it can), never trap.
enum SnapshotTarget {
    static let target = FuzzTarget(name: "bbolt", run: run)

    static func run(_ input: [UInt8], _ scratch: String) throws {
        do {
            try BBoltReader.validate(bytes: input)
        } catch is BBoltError {
            return
        } catch {
            throw FuzzFinding("bbolt reader threw \(type(of: error)): \(error)")
        }
    }
}
