import Foundation
import GRDB

/// A copy of the Redis fixture edited by hand, as a hostile or broken fixture would be.
enum CraftedTape {
    /// Copies `fixtures/redis.tape` to `path` and runs `sql` on the copy, with foreign keys off: a crafted tape
    /// breaks the schema's references too.
    static func make(at path: String, _ sql: String) throws {
        try FileManager.default.copyItem(atPath: InspectCommandTests.fixture, toPath: path)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = false
        let database = try DatabaseQueue(path: path, configuration: configuration)
        try database.writeWithoutTransaction { db in try db.execute(sql: sql) }
        try database.close()
    }
}
