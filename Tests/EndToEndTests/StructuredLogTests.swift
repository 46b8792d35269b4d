import Foundation
import Synchronization
import Logging
import RelayCore
import RelayServer
import RelayTestSupport
import Testing

@Suite("Structured logs: JSON and logfmt")
struct StructuredLogTests {
    typealias Lines = LockedLines

    static func handler(_ format: RelayConfiguration.Logging.Format, into lines: Lines) -> RelayLogHandler {
        RelayLogHandler(label: "m365-relay", format: format, level: .info, output: { lines.append($0) })
    }

    /// Client-controlled text (quotes, newlines, escapes, `=`) stays inside its value.
    static let hostile = "evil\"\n=x \\ \u{1B}[31m"

    @Test func jsonLinesParseAndKeepEveryField() throws {
        let lines = Lines()
        var logger = Logger(label: "m365-relay") { _ in Self.handler(.json, into: lines) }
        logger[metadataKey: "component"] = "delivery"
        logger.info("Message delivered", metadata: ["queue_id": "01ABC", "helo": "\(Self.hostile)"])
        logger.debug("not at this level")
        #expect(lines.all.count == 1)
        let line = try #require(lines.all.first)
        #expect(line.hasSuffix("\n") && line.dropLast().contains("\n") == false, "one line per record")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["msg"] == "Message delivered")
        #expect(object["level"] == "info")
        #expect(object["logger"] == "m365-relay")
        #expect(object["queue_id"] == "01ABC")
        #expect(object["component"] == "delivery")
        #expect(object["helo"] == Self.hostile)
        let timestamp = try #require(object["ts"])
        #expect((try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(timestamp)) != nil, "\(timestamp)")
    }

    @Test func logfmtQuotesWhatNeedsIt() throws {
        let lines = Lines()
        let logger = Logger(label: "m365-relay") { _ in Self.handler(.logfmt, into: lines) }
        logger.notice("Message queued", metadata: ["queue_id": "01ABC", "from": "a@b.c", "helo": "\(Self.hostile)", "empty": ""])
        let line = try #require(lines.all.first)
        #expect(line.hasSuffix("\n") && line.dropLast().contains("\n") == false)
        #expect(line.contains(" level=notice "))
        #expect(line.contains(" logger=m365-relay "))
        #expect(line.contains(" msg=\"Message queued\""))
        #expect(line.contains(" queue_id=01ABC"))
        #expect(line.contains(" from=a@b.c"))
        #expect(line.contains(" empty=\"\""))
        #expect(line.contains(#" helo="evil\"\n=x \\ \u001b[31m""#), "\(line)")
    }

    /// The built binary with `logging.format: json`: every line is JSON, and
    /// every line about the message carries its queue id.
    @Test func theRelayLogsJSONWithTheQueueIDOnEveryMessageLine() async throws {
        let directory = TemporaryDirectory("json-logs")
        let port = freeLoopbackPort()
        let configuration = try directory.write("relay.yaml", """
            server:
              hostname: relay.test
              listeners:
                - address: "127.0.0.1:\(port)"
                  tls: none
            storage:
              url: "sqlite:\(directory.file("data/relay.sqlite"))"
            clients:
              - name: local
                networks: ["127.0.0.1/32"]
                auth: none
                route: sandbox
            routes:
              - name: sandbox
                mode: sandbox
            logging:
              format: json
            """)
        let relay = try RelayChildProcess(configuration: configuration, log: directory.file("relay.log"))
        defer { relay.kill() }
        #expect(await eventually(timeout: 60) { relay.log.contains("m365-relay started") }, "\(relay.log)")
        let sent = try await sendWithPython(
            port: port, from: "scanner@contoso.com", to: ["desk@contoso.com"],
            content: Array("From: scanner@contoso.com\r\nSubject: log\r\n\r\nx\r\n".utf8))
        #expect(sent["ok"] as? Bool == true, "\(sent)")
        #expect(await eventually(timeout: 60) { relay.log.contains("Message delivered") }, "\(relay.log)")
        #expect(relay.terminate() == 0)

        let objects = try relay.log.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "not a JSON line: \(line)")
        }
        let queued = try #require(objects.first { $0["msg"] == "Message queued" })
        let id = try #require(queued["queue_id"])
        let delivered = try #require(objects.first { $0["msg"] == "Message delivered" })
        #expect(delivered["queue_id"] == id)
        // Every line that names the message's route and a reply is about a message: it carries a queue id.
        for object in objects where object["msg"]?.hasPrefix("Message") == true {
            #expect(object["queue_id"] != nil, "\(object)")
        }
    }
}

/// Lines a handler wrote, from any thread.
final class LockedLines: Sendable {
    private let box = Mutex<[String]>([])
    var all: [String] { box.withLock { $0 } }
    func append(_ line: String) { box.withLock { $0.append(line) } }
}
