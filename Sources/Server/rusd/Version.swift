/// Versions rusd reports.
enum RusdVersion {
    /// rusd's own version.
    static let rusd = "0.1.0"
    /// The etcd API version rusd implements (reported by `--version`).
    static let etcdAPI = "3.6"
}
