import ArgumentParser
import Foundation
import RelayAdmin
import RelayCore

/// `m365-relay trace`: search the message trace.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Search the message trace, newest first, through a running relay's admin API or, with the relay stopped, its storage.")

    @OptionGroup var access: RelayAccessOptions

    @Option(help: "Part of the envelope sender, case-insensitive.")
    var from: String?

    @Option(help: "Part of any envelope recipient, case-insensitive.")
    var to: String?

    @Option(help: "queued, deferred, delivered, failed, bounced, held or deleted.")
    var status: String?

    @Option(help: "Received at or after: an age (30m, 1h, 2d, 1w) or an ISO 8601 date and time (2026-05-01T09:30:00Z).")
    var since: String?

    @Option(help: "Received before: an age or an ISO 8601 date and time.")
    var until: String?

    @Option(help: "The clients entry's name.")
    var client: String?

    @Option(help: "The route's name.")
    var route: String?

    @Option(help: "The Message-ID header, with or without angle brackets.")
    var messageID: String?

    @Option(help: "A queue id.")
    var id: String?

    @Option(help: "At most this many messages.")
    var limit: Int = 50

    @Flag(help: "Print a JSON array of message objects (keys in the README).")
    var json = false

    func validate() throws {
        _ = try query(now: Date())
    }

    /// The options as a search; mistakes are usage errors (exit 2) worded as the API words them.
    func query(now: Date) throws -> RelayTraceQuery {
        guard (1...RelayCommandOutput.maximumListed).contains(limit) else {
            throw ValidationError("--limit must be from 1 to \(RelayCommandOutput.maximumListed), got \(limit)")
        }
        var query = RelayTraceQuery(sender: from, recipient: to, client: client, route: route, messageID: messageID)
        do {
            query.status = try status.map { text throws(RelayTraceParameterError) in try RelayTraceQueryParsing.status(text, parameter: "--status") }
            query.since = try since.map { text throws(RelayTraceParameterError) in try RelayTraceQueryParsing.date(text, parameter: "--since", now: now) }
            query.until = try until.map { text throws(RelayTraceParameterError) in try RelayTraceQueryParsing.date(text, parameter: "--until", now: now) }
        } catch {
            throw ValidationError(error.description)
        }
        if let since = query.since, let until = query.until, until < since {
            throw ValidationError("--until: is before --since")
        }
        if let id {
            guard let queueID = RelayQueueID(validating: id.uppercased()) else {
                throw ValidationError("--id: \"\(id)\" is not a queue id (16 characters of 0-9 and A-Z)")
            }
            query.queueID = queueID.rawValue
        }
        return query
    }

    func run() async throws {
        let query = try query(now: Date())
        try await RelayCommandOutput.run("trace") {
            let found = try await access.withQueue { queue in try await RelayCommandOutput.collect(from: queue, query, limit: limit) }
            if json {
                try RelayCommandOutput.printJSON(found.messages)
            } else if found.messages.isEmpty {
                print("No messages match.")
            } else {
                print(RelayCommandOutput.table(found.messages), terminator: "")
            }
            if found.more { RelayCommandOutput.note("more messages match than --limit \(limit); raise it or narrow the search") }
        }
    }
}

/// How `queue` and `trace` print: aligned tables for people, JSON (the admin API's objects) for scripts.
enum RelayCommandOutput {
    /// Listing follows the API's pages (at most 500 each) up to this many.
    static let maximumListed = 100_000

    /// Runs a command's work; a ``RelayCommandFailure`` goes to standard error with exit code 1.
    static func run(_ command: String, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as RelayCommandFailure {
            FileHandle.standardError.write(Data("m365-relay \(command): \(failure)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data("note: \(text)\n".utf8))
    }

    static func queueID(_ text: String) throws -> RelayQueueID {
        guard let id = RelayQueueID(validating: text.uppercased()) else {
            throw ValidationError("\"\(text)\" is not a queue id (16 characters of 0-9 and A-Z, as `m365-relay queue list` shows them)")
        }
        return id
    }

    /// Up to `limit` messages, following the pages; `more` when others match too.
    static func collect(
        from queue: any RelayQueueAccess, _ query: RelayTraceQuery, limit: Int
    ) async throws(RelayCommandFailure) -> (messages: [RelayAdminMessage], more: Bool) {
        var messages: [RelayAdminMessage] = []
        var query = query
        while true {
            query.limit = min(RelayTraceQuery.maximumLimit, limit - messages.count)
            let page = try await queue.search(query)
            messages += page.messages
            guard let cursor = page.nextCursor else { return (messages, false) }
            if messages.count >= limit { return (messages, true) }
            query.cursor = cursor
        }
    }

    static func printJSON<Value: Encodable>(_ value: Value) throws {
        var data = try RelayAdminJSON.encode(value, pretty: true)
        data.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(data)
    }

    /// `2026-05-01 09:30:12Z`: to the second, in UTC like the JSON.
    static func time(_ date: Date) -> String {
        let text = RelayAdminJSON.formatDate(date)
        // 2026-05-01T09:30:12.345Z -> 2026-05-01 09:30:12Z
        return text.prefix(10) + " " + text.dropFirst(11).prefix(8) + "Z"
    }

    static func truncated(_ text: String, _ width: Int) -> String {
        let line = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        return line.count <= width ? line : line.prefix(width - 1) + "…"
    }

    static func recipients(_ message: RelayAdminMessage) -> String {
        guard let first = message.recipients.first?.address else { return "-" }
        return message.recipients.count == 1 ? first : "\(first) +\(message.recipients.count - 1)"
    }

    /// One line per message under a header, columns padded to their widest cell.
    static func table(_ messages: [RelayAdminMessage]) -> String {
        var rows = [["ID", "STATUS", "RECEIVED", "SENDER", "RECIPIENTS", "ROUTE", "ATTEMPTS", "LAST REPLY"]]
        for message in messages {
            rows.append([
                message.id, message.status.rawValue, time(message.receivedAt), truncated(message.sender.isEmpty ? "<>" : message.sender, 40),
                truncated(recipients(message), 40), message.route, String(message.attempts), truncated(message.lastReply ?? "", 60),
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n"
    }

    /// A detail value as `key=value` shows it: quoted when it has spaces, so where it ends is clear.
    static func quoted(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" }) || value.isEmpty
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : value
    }

    /// `queue show`: the message, then its timeline.
    static func describe(_ timeline: RelayAdminTimeline) -> String {
        let message = timeline.message
        let envelope = timeline.envelope
        var lines: [String] = []
        func field(_ name: String, _ value: String) { lines.append("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        lines.append("Message \(message.id)  \(message.status.rawValue)")
        var from = "\(envelope.clientName) [\(envelope.clientAddress)] helo \(envelope.heloName)"
        if let tls = envelope.tlsVersion { from += ", \(tls)" }
        if let identity = envelope.authenticatedAs { from += ", authenticated as \(identity)" }
        field("received", "\(time(message.receivedAt)) from \(from)")
        field("sender", message.sender.isEmpty ? "<>" : message.sender)
        if let original = envelope.originalSender { field("", "(given as \(original.isEmpty ? "<>" : original))") }
        for (index, recipient) in message.recipients.enumerated() {
            let reply = recipient.lastReply.map { ": \($0)" } ?? ""
            field(index == 0 ? "recipients" : "", "\(recipient.address) (\(recipient.status)\(reply))")
        }
        field("route", message.route)
        field("size", "\(message.size) octets")
        if let messageID = message.messageID { field("message-id", messageID) }
        var attempts = "\(message.attempts)"
        if let next = message.nextAttemptAt, ["queued", "deferred"].contains(message.status.rawValue) { attempts += ", next \(time(next))" }
        field("attempts", attempts)
        if let finished = message.finishedAt { field("finished", time(finished)) }
        for note in envelope.policyNotes { field("policy", note) }
        field("content", timeline.hasContent ? "stored" : "removed")
        lines.append("")
        lines.append("Timeline")
        let kindWidth = timeline.events.map(\.kind.count).max() ?? 0
        for event in timeline.events {
            var line = "  \(time(event.at))  \(event.kind.padding(toLength: kindWidth, withPad: " ", startingAt: 0))  \(event.summary)"
            if !event.details.isEmpty {
                line += "  [" + event.details.keys.sorted().map { "\($0)=\(quoted(event.details[$0]!))" }.joined(separator: " ") + "]"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
