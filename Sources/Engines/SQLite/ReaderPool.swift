import EngineAPI

/// Reader connections, each used by one holder at a time: checked out for a `get` or for the
/// life of a `ReadView`, then given back. Idle ones beyond `maxIdle` are closed. The pool knows
/// every connection it opened, so `closeAll` (engine close) also closes those still checked out.
final class ReaderPool: @unchecked Sendable {
    private let path: String
    private let settings: SQLiteSettings
    private let mutex = EngineMutex()
    private var idle: [SQLiteConnection] = []
    private var open: [ObjectIdentifier: SQLiteConnection] = [:]
    private(set) var opened = 0

    init(path: String, settings: SQLiteSettings) {
        self.path = path
        self.settings = settings
    }

    /// An idle connection, or a newly opened one.
    func checkOut() throws -> SQLiteConnection {
        if let connection = mutex.withLock({ idle.popLast() }) { return connection }
        let connection = try SQLiteConnection(path: path, create: false)
        do { try settings.applyReader(connection) } catch {
            connection.close()
            throw error
        }
        mutex.withLock {
            open[ObjectIdentifier(connection)] = connection
            opened += 1
        }
        return connection
    }

    /// Takes back a connection with no transaction open (one left in a transaction is closed).
    func checkIn(_ connection: SQLiteConnection) {
        let keep = !connection.inTransaction && mutex.withLock {
            guard idle.count < settings.maxIdleReaders else { return false }
            idle.append(connection)
            return true
        }
        if !keep {
            mutex.withLock { open[ObjectIdentifier(connection)] = nil }
            connection.close()
        }
    }

    var counts: (open: Int, idle: Int) { mutex.withLock { (open.count, idle.count) } }

    /// Closes every connection, idle or checked out. Only with no reader at work (the engine's
    /// lifecycle lock held exclusively).
    func closeAll() {
        let all = mutex.withLock { () -> [SQLiteConnection] in
            let all = Array(open.values)
            open = [:]
            idle = []
            return all
        }
        for connection in all { connection.close() }
    }
}
