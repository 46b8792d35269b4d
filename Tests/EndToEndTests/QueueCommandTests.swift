import Foundation
import Logging
import NIOCore
import RelayAdmin
import RelayCore
import RelayStorage
import RelayTestSupport
import Testing

/// `m365-relay queue` and `trace`, run as the built binary: against storage
/// prepared here (no relay running), and against a live admin server.
@Suite("queue and trace commands")
struct QueueCommandTests {
    /// A queue database with three messages: `delivered` (3 h ago), `deferred` (2 h ago), `queued` (1 h ago).
    final class PreparedQueue: @unchecked Sendable {
        let directory = TemporaryDirectory("cli-queue")
        var storage: String { directory.file("data/relay.sqlite") }
        var ids: [String: RelayQueueID] = [:]
        let now = Date()

        static func logger() -> Logger {
            var logger = Logger(label: "queue-command-tests")
            logger.logLevel = .critical
            return logger
        }

        func openStore() throws -> SQLiteQueueStore {
            try SQLiteQueueStore(path: storage, logger: Self.logger())
        }

        /// Fills the queue, then closes it (unless `keepOpen`, which holds its lock like a running relay).
        func fill(keepOpen: Bool = false) async throws -> SQLiteQueueStore? {
            let store = try openStore()
            func enqueue(_ name: String, sender: String, recipient: String, hoursAgo: Double) async throws -> RelayQueueID {
                let received = now.addingTimeInterval(-hoursAgo * 3600)
                let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(received.timeIntervalSince1970 * 1000))
                let envelope = RelayEnvelope(
                    sender: sender, recipients: [recipient], clientName: "scanners", clientAddress: "10.20.0.7", heloName: "scanner.local",
                    route: "sandbox", messageID: "<\(name)@contoso.com>")
                _ = try await store.enqueue(id: id, content: ByteBuffer(string: "Subject: \(name)\r\n\r\nbody\r\n"), envelope: envelope, now: received)
                ids[name] = id
                return id
            }
            func attempt(_ id: RelayQueueID, at: Date, delivered: Bool, reply: String) async throws {
                let leased = try await store.lease(owner: "test", now: at, limit: 10, leaseDuration: 60, routes: nil)
                #expect(leased.map(\.id) == [id])
                let recipients = leased.first?.recipients ?? []
                try await store.recordAttempt(id: id, owner: "test", result: RelayAttemptResult(
                    startedAt: at, finishedAt: at.addingTimeInterval(1), route: "sandbox",
                    recipientUpdates: delivered ? recipients.map { RelayRecipient(address: $0.address, status: .delivered, lastReply: reply) } : [],
                    summary: reply, disposition: delivered ? .finished : .deferred(until: now.addingTimeInterval(3600))))
            }
            let delivered = try await enqueue("delivered", sender: "scanner@contoso.com", recipient: "alice@example.com", hoursAgo: 3)
            try await attempt(delivered, at: now.addingTimeInterval(-3 * 3600 + 2), delivered: true, reply: "250 2.6.0 Queued mail for delivery")
            let deferred = try await enqueue("deferred", sender: "erp@contoso.com", recipient: "bob@example.com", hoursAgo: 2)
            try await attempt(deferred, at: now.addingTimeInterval(-2 * 3600 + 2), delivered: false, reply: "451 4.7.500 Server busy")
            _ = try await enqueue("queued", sender: "scanner@contoso.com", recipient: "carol@example.com", hoursAgo: 1)
            if keepOpen { return store }
            store.close()
            return nil
        }

        func id(_ name: String) -> String { ids[name]!.rawValue }

        /// A configuration for this queue; `admin` as given (nil: no admin section).
        func configuration(admin: String?) throws -> String {
            var text = CommandLineTests.configuration(port: freeLoopbackPort(), storage: storage)
            if let admin { text += "\n" + admin + "\n" }
            return try directory.write("relay-\(UUID().uuidString.prefix(6)).yaml", text)
        }
    }

    static func run(_ arguments: [String]) async throws -> ExternalProcess.Result {
        try await CommandLineTests.run(arguments, timeout: 60)
    }

    static func decodeMessages(_ text: String) throws -> [RelayAdminMessage] {
        try RelayAdminJSON.decode([RelayAdminMessage].self, from: Data(text.utf8))
    }

    // MARK: Storage, no relay running

    @Test("with no relay running, trace and queue read and change the storage itself")
    func storageWithoutRelay() async throws {
        let queue = PreparedQueue()
        _ = try await queue.fill()
        // An admin address where nothing listens: the commands fall back to storage.
        let config = try queue.configuration(admin: "admin:\n  address: \"127.0.0.1:\(freeLoopbackPort())\"")

        let all = try await Self.run(["trace", "--config", config, "--json"])
        #expect(all.status == 0, "stderr: \(all.stderr)")
        #expect(try Self.decodeMessages(all.stdout).map(\.id) == [queue.id("queued"), queue.id("deferred"), queue.id("delivered")])

        let fromScanner = try await Self.run(["trace", "--config", config, "--from", "SCANNER@", "--since", "150m", "--json"])
        #expect(fromScanner.status == 0, "stderr: \(fromScanner.stderr)")
        #expect(try Self.decodeMessages(fromScanner.stdout).map(\.id) == [queue.id("queued")])

        let table = try await Self.run(["trace", "--config", config, "--status", "delivered"])
        #expect(table.status == 0, "stderr: \(table.stderr)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(table.stdout)")
        #expect(lines.first?.hasPrefix("ID") == true && lines.first?.contains("LAST REPLY") == true, "\(table.stdout)")
        #expect(lines.last?.hasPrefix(queue.id("delivered")) == true, "\(table.stdout)")
        #expect(lines.last?.contains("250 2.6.0 Queued mail for delivery") == true, "\(table.stdout)")
        // Columns line up: the header's STATUS starts where the row's status does.
        if let header = lines.first, let row = lines.last, let statusColumn = header.range(of: "STATUS") {
            #expect(row[statusColumn.lowerBound...].hasPrefix("delivered"), "\(table.stdout)")
        }

        let waiting = try await Self.run(["queue", "list", "--config", config, "--json"])
        #expect(waiting.status == 0, "stderr: \(waiting.stderr)")
        #expect(try Self.decodeMessages(waiting.stdout).map(\.id) == [queue.id("queued"), queue.id("deferred")])
        let everything = try await Self.run(["queue", "list", "--config", config, "--all"])
        #expect(everything.stdout.contains(queue.id("delivered")), "\(everything.stdout)")

        let held = try await Self.run(["queue", "hold", queue.id("queued").lowercased(), "--config", config])
        #expect(held.status == 0, "stderr: \(held.stderr)")
        #expect(held.stdout == "\(queue.id("queued")) held (status held)\n")

        let show = try await Self.run(["queue", "show", queue.id("queued"), "--config", config, "--json"])
        #expect(show.status == 0, "stderr: \(show.stderr)")
        let timeline = try RelayAdminJSON.decode(RelayAdminTimeline.self, from: Data(show.stdout.utf8))
        #expect(timeline.message.status == .held)
        #expect(timeline.events.last?.kind == "held")
        #expect(timeline.events.last?.details["by"] == "cli uid \(getuid())")

        let human = try await Self.run(["queue", "show", queue.id("deferred"), "--config", config])
        #expect(human.status == 0, "stderr: \(human.stderr)")
        for text in ["Message \(queue.id("deferred"))  deferred", "erp@contoso.com", "bob@example.com (pending)", "Timeline", "451 4.7.500 Server busy"] {
            #expect(human.stdout.contains(text), "missing \(text) in:\n\(human.stdout)")
        }
    }

    @Test("refused actions, unknown messages and missing storage exit 1 with the reason; usage errors exit 2")
    func failures() async throws {
        let queue = PreparedQueue()
        _ = try await queue.fill()
        let config = try queue.configuration(admin: nil)
        let unknown = RelayQueueID.make(millisecondsSinceEpoch: 1).rawValue

        let release = try await Self.run(["queue", "release", queue.id("delivered"), "--config", config])
        #expect(release.status == 1)
        #expect(release.stderr.contains("only a held message can be released"), "\(release.stderr)")

        for command in [["queue", "show", unknown], ["queue", "retry", unknown], ["queue", "delete", unknown]] {
            let result = try await Self.run(command + ["--config", config])
            #expect(result.status == 1, "\(command): \(result.stderr)")
            #expect(result.stderr.contains(unknown), "\(command): \(result.stderr)")
        }

        let missing = PreparedQueue()
        let noQueue = try await Self.run(["trace", "--config", try missing.configuration(admin: nil)])
        #expect(noQueue.status == 1)
        #expect(noQueue.stderr.contains("no queue at \(missing.storage)"), "\(noQueue.stderr)")
        #expect(!FileManager.default.fileExists(atPath: missing.storage), "a look must not create a queue")

        for arguments in [
            ["trace", "--status", "bogus"], ["trace", "--since", "yesterday"], ["trace", "--limit", "0"], ["trace", "--id", "nope"],
            ["queue", "show", "not-an-id"], ["queue", "hold"], ["queue", "frobnicate"], ["queue", "list", "--limit", "-3"],
        ] {
            let result = try await Self.run(arguments + ["--config", config])
            #expect(result.status == 2, "\(arguments): status \(result.status), stderr: \(result.stderr)")
            #expect(!result.stderr.isEmpty, "\(arguments)")
        }
        let badStatus = try await Self.run(["trace", "--status", "bogus", "--config", config])
        #expect(badStatus.stderr.contains("unknown status \"bogus\""), "\(badStatus.stderr)")
    }

    @Test("a relay holding the queue with its admin API off: exit 1 saying how to enable admin")
    func lockedWithoutAdmin() async throws {
        let queue = PreparedQueue()
        let store = try #require(try await queue.fill(keepOpen: true))
        defer { store.close() }
        let result = try await Self.run(["queue", "list", "--config", try queue.configuration(admin: nil)])
        #expect(result.status == 1)
        #expect(result.stderr.contains("in use by a running m365-relay whose admin API is off"), "\(result.stderr)")
        #expect(result.stderr.contains("admin"), "\(result.stderr)")
    }

    @Test("./m365-relay.yaml is the default configuration")
    func defaultConfigurationFile() async throws {
        let queue = PreparedQueue()
        _ = try await queue.fill()
        let config = try queue.configuration(admin: nil)
        try FileManager.default.copyItem(atPath: config, toPath: queue.directory.file("m365-relay.yaml"))
        let process = try RelayCommandProcess(["trace", "--json"], workingDirectory: queue.directory.path)
        #expect(await process.exitStatus(timeout: 60) == 0, "stderr: \(process.stderr)")
        #expect(try Self.decodeMessages(process.stdout).count == 3)
    }

    // MARK: Through the admin API

    struct Backend: RelayAdminBackend {
        let store: SQLiteQueueStore
        var trace: any RelayTraceStore { store }
        func routes(now: Date) async -> [RelayRouteStatus] { [] }
        func notReadyReason() async -> String? { nil }
        func metricsText() async -> String { "" }
    }

    @Test("with a relay running, the commands go through its admin API with the token")
    func throughTheAdminAPI() async throws {
        let queue = PreparedQueue()
        // This process holds the queue like a running relay: only the API can reach it.
        let store = try #require(try await queue.fill(keepOpen: true))
        defer { store.close() }
        let token = "cli-token-\(UUID().uuidString)"
        let server = try RelayAdminServer(
            address: RelayEndpoint(host: "127.0.0.1", port: 0), token: token, backend: Backend(store: store), logger: PreparedQueue.logger())
        let port = try await server.start()
        let tokenFile = try queue.directory.write("admin.token", token + "\n")
        let config = try queue.configuration(admin: "admin:\n  address: \"127.0.0.1:\(port)\"\n  token_file: \(tokenFile)")
        do {
            let trace = try await Self.run(["trace", "--config", config, "--to", "bob@", "--json"])
            #expect(trace.status == 0, "stderr: \(trace.stderr)")
            #expect(try Self.decodeMessages(trace.stdout).map(\.id) == [queue.id("deferred")])

            // Pages of the API are followed up to --limit.
            let limited = try await Self.run(["trace", "--config", config, "--limit", "2", "--json"])
            #expect(try Self.decodeMessages(limited.stdout).count == 2)
            #expect(limited.stderr.contains("more messages match"), "\(limited.stderr)")

            let hold = try await Self.run(["queue", "hold", queue.id("deferred"), "--config", config, "--json"])
            #expect(hold.status == 0, "stderr: \(hold.stderr)")
            #expect(try RelayAdminJSON.decode(RelayAdminMessage.self, from: Data(hold.stdout.utf8)).status == .held)
            let timeline = try #require(try await store.timeline(id: RelayQueueID(rawValue: queue.id("deferred"))))
            #expect(timeline.events.last?.details["by"] == "admin-api 127.0.0.1")

            let again = try await Self.run(["queue", "hold", queue.id("deferred"), "--config", config])
            #expect(again.status == 1)
            #expect(again.stderr.contains("only a queued or deferred message can be held"), "\(again.stderr)")

            let show = try await Self.run(["queue", "show", RelayQueueID.make(millisecondsSinceEpoch: 1).rawValue, "--config", config])
            #expect(show.status == 1, "\(show.stderr)")

            // A wrong token is refused, and the command says so.
            _ = try queue.directory.write("admin.token", "wrong\n")
            let refused = try await Self.run(["queue", "list", "--config", config])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("refused the request (401)"), "\(refused.stderr)")
            #expect(!refused.stderr.contains(token))
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }
}
