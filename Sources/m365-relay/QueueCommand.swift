import ArgumentParser
import Foundation
import RelayAdmin
import RelayCore

/// `m365-relay queue list|show|retry|hold|release|delete`.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Operate on queued messages, through a running relay's admin API or, with the relay stopped, its storage.",
        subcommands: [List.self, Show.self, Retry.self, Hold.self, Release.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List messages not finished yet (queued, deferred, held), newest first; --all for every status.")

        @OptionGroup var access: RelayAccessOptions

        @Flag(help: "Every status, delivered, failed and deleted included.")
        var all = false

        @Option(help: "At most this many messages.")
        var limit: Int = 100

        @Flag(help: "Print a JSON array of message objects (keys in the README).")
        var json = false

        func validate() throws {
            guard (1...RelayCommandOutput.maximumListed).contains(limit) else {
                throw ValidationError("--limit must be from 1 to \(RelayCommandOutput.maximumListed), got \(limit)")
            }
        }

        func run() async throws {
            try await RelayCommandOutput.run("queue list") {
                let statuses: [RelayTraceStatus?] = all ? [nil] : [.queued, .deferred, .held]
                var messages: [RelayAdminMessage] = []
                var more = false
                try await access.withQueue { queue in
                    for status in statuses {
                        let found = try await RelayCommandOutput.collect(from: queue, RelayTraceQuery(status: status), limit: limit)
                        messages += found.messages
                        more = more || found.more
                    }
                }
                messages.sort { ($0.receivedAt, $0.id) > ($1.receivedAt, $1.id) }
                if messages.count > limit {
                    messages = Array(messages.prefix(limit))
                    more = true
                }
                if json {
                    try RelayCommandOutput.printJSON(messages)
                } else if messages.isEmpty {
                    print(all ? "No messages." : "No messages waiting (queued, deferred or held). --all shows every status.")
                } else {
                    print(RelayCommandOutput.table(messages), terminator: "")
                }
                if more { RelayCommandOutput.note("more messages than --limit \(limit); raise it, or narrow with m365-relay trace") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one message and its timeline.")

        @OptionGroup var access: RelayAccessOptions

        @Argument(help: "The queue id.")
        var id: String

        @Flag(help: "Print the timeline as a JSON object (keys in the README).")
        var json = false

        func validate() throws { _ = try RelayCommandOutput.queueID(id) }

        func run() async throws {
            let queueID = try RelayCommandOutput.queueID(id)
            try await RelayCommandOutput.run("queue show") {
                let timeline = try await access.withQueue { queue in try await queue.timeline(id: queueID) }
                guard let timeline else { throw RelayCommandFailure("no message \(queueID.rawValue) (unknown, or pruned from the trace)") }
                if json {
                    try RelayCommandOutput.printJSON(timeline)
                } else {
                    print(RelayCommandOutput.describe(timeline), terminator: "")
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Attempt delivery of a queued or deferred message now.")
        @OptionGroup var target: QueueActionOptions
        func validate() throws { try target.validate() }
        func run() async throws { try await target.run(.retry, done: "due now") }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Hold a message: not delivered until released.")
        @OptionGroup var target: QueueActionOptions
        func validate() throws { try target.validate() }
        func run() async throws { try await target.run(.hold, done: "held") }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release a held message; it is due at once.")
        @OptionGroup var target: QueueActionOptions
        func validate() throws { try target.validate() }
        func run() async throws { try await target.run(.release, done: "released") }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a message that is not finished: its content is removed, the trace keeps it as deleted.")
        @OptionGroup var target: QueueActionOptions
        func validate() throws { try target.validate() }
        func run() async throws { try await target.run(.delete, done: "deleted") }
    }
}

/// The message an action applies to, and how to print the result.
struct QueueActionOptions: ParsableArguments {
    @OptionGroup var access: RelayAccessOptions

    @Argument(help: "The queue id.")
    var id: String

    @Flag(help: "Print the message afterwards as a JSON object (keys in the README).")
    var json = false

    func validate() throws { _ = try RelayCommandOutput.queueID(id) }

    func run(_ action: RelayQueueAction, done: String) async throws {
        let queueID = try RelayCommandOutput.queueID(id)
        try await RelayCommandOutput.run("queue \(action.rawValue)") {
            let message = try await access.withQueue { queue in try await queue.apply(action, to: queueID) }
            if json {
                try RelayCommandOutput.printJSON(message)
            } else {
                print("\(message.id) \(done) (status \(message.status.rawValue))")
            }
        }
    }
}
