import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import RelayCore
import RelayStorage
import ServiceLifecycle

/// Leases due messages from the queue and sends each through its route's
/// transport, a bounded number at a time; records every attempt, schedules
/// retries, and bounces what cannot be delivered.
public final class RelayDeliveryService: Service, Sendable {
    public struct Settings: Sendable {
        public var hostname: String
        public var schedule: RelayRetrySchedule
        public var bounces: RelayConfiguration.BounceTarget
        public var operatorAddress: String?
        /// Deliveries under way at once.
        public var concurrency: Int
        /// How long a lease holds a message; longer than any single attempt.
        public var leaseDuration: TimeInterval = 1800
        /// Longest sleep when nothing is due (new mail wakes the loop earlier).
        public var idlePoll: Duration = .seconds(5)
        /// The `From:` of delivery status notifications, per route: the mailbox
        /// they are sent as (PRODUCT.md: the route's `mailbox`, else `delivery.operator`).
        public var bounceSenders: [String: String] = [:]

        public init(hostname: String, schedule: RelayRetrySchedule, bounces: RelayConfiguration.BounceTarget, operatorAddress: String?, concurrency: Int) {
            self.hostname = hostname
            self.schedule = schedule
            self.bounces = bounces
            self.operatorAddress = operatorAddress
            self.concurrency = concurrency
        }
    }

    private let store: any RelayQueueStore
    private let transports: [String: any RelayTransport]
    private let settings: Settings
    private let owner: String
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let wakeSignal = DeliveryWakeSignal()
    private let stopping = NIOLockedValueBox(false)

    public init(
        store: any RelayQueueStore, transports: [String: any RelayTransport], settings: Settings, owner: String,
        logger: Logger, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.transports = transports
        self.settings = settings
        self.owner = owner
        self.logger = logger
        self.now = now
    }

    /// New work may be due: look now rather than at the next poll.
    public func wake() { wakeSignal.signal() }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await deliveryLoop()
        } onGracefulShutdown: {
            self.stopping.withLockedValue { $0 = true }
            self.wakeSignal.signal()
        }
        for transport in transports.values { await transport.shutdown() }
        logger.info("Delivery stopped")
    }

    private var isStopping: Bool { stopping.withLockedValue { $0 } }

    private func deliveryLoop() async {
        let inFlight = NIOLockedValueBox(0)
        await withDiscardingTaskGroup { group in
            while !isStopping {
                let free = settings.concurrency - inFlight.withLockedValue { $0 }
                var leased: [RelayQueuedMessage] = []
                if free > 0 {
                    do {
                        leased = try await store.lease(owner: owner, now: now(), limit: free, leaseDuration: settings.leaseDuration, routes: nil)
                    } catch {
                        logger.error("Could not lease messages", metadata: ["error": "\(error)"])
                    }
                }
                for message in leased {
                    inFlight.withLockedValue { $0 += 1 }
                    group.addTask {
                        await self.deliver(message)
                        inFlight.withLockedValue { $0 -= 1 }
                        self.wakeSignal.signal()
                    }
                }
                if leased.isEmpty || leased.count >= free {
                    // Nothing due, or every slot busy: until new mail, a finished delivery, or the next due time.
                    await wakeSignal.wait(timeout: await sleepBudget(busy: leased.count >= free))
                }
            }
            // Leaving the group waits for the attempts under way; nothing new starts.
        }
    }

    private func sleepBudget(busy: Bool) async -> Duration {
        if busy { return settings.idlePoll }
        guard let due = try? await store.nextDueDate() else { return settings.idlePoll }
        let seconds = due.timeIntervalSince(now())
        if seconds <= 0 { return .milliseconds(10) }
        return min(settings.idlePoll, .milliseconds(Int64(seconds * 1000) + 1))
    }

    // MARK: One message

    func deliver(_ message: RelayQueuedMessage) async {
        let started = now()
        let pending = message.pendingRecipients
        var logger = self.logger
        logger[metadataKey: "queue_id"] = "\(message.id)"
        let outcome: RelayTransportOutcome
        if let transport = transports[message.envelope.route] {
            do {
                let content = try store.openContent(id: message.id)
                outcome = await transport.deliver(message, recipients: pending, content: content)
                content.close()
            } catch {
                outcome = .all(pending, .temporaryFailure, "Could not read the queued message: \(error)")
            }
        } else {
            outcome = .all(pending, .temporaryFailure, "Route \(message.envelope.route) is not configured")
        }
        let finished = now()

        var updates: [RelayRecipient] = []
        var stillPending: [RelayRecipient] = []
        for address in pending {
            let result = outcome.recipients.first { $0.address == address }
            switch result?.status {
            case .delivered?: updates.append(RelayRecipient(address: address, status: .delivered, lastReply: result?.reply))
            case .permanentFailure?: updates.append(RelayRecipient(address: address, status: .failed, lastReply: result?.reply))
            case .temporaryFailure?, nil: stillPending.append(RelayRecipient(address: address, status: .pending, lastReply: result?.reply ?? outcome.summary))
            }
        }
        let disposition: RelayAttemptResult.Disposition
        if stillPending.isEmpty {
            disposition = .finished
        } else {
            switch settings.schedule.nextAttempt(afterAttempt: message.attempts + 1, receivedAt: message.receivedAt, now: finished) {
            case .retry(let at):
                disposition = .deferred(until: at)
                updates += stillPending
            case .expire:
                disposition = .finished
                updates += stillPending.map {
                    RelayRecipient(address: $0.address, status: .failed, lastReply: "Delivery expired after \(Int(settings.schedule.maxAge / 3600)) hours; last reply: \($0.lastReply ?? outcome.summary)")
                }
            }
        }
        let failed = updates.filter { $0.status == .failed }
        let bounceHeaders = failed.isEmpty ? nil : headerSection(of: message.id)

        do {
            try await store.recordAttempt(id: message.id, owner: owner, result: RelayAttemptResult(
                startedAt: started, finishedAt: finished, route: message.envelope.route,
                recipientUpdates: updates, summary: outcome.summary, disposition: disposition))
        } catch {
            logger.error("Could not record a delivery attempt", metadata: ["error": "\(error)"])
            return
        }
        let delivered = updates.filter { $0.status == .delivered }.count
        switch disposition {
        case .finished where failed.isEmpty:
            logger.info("Message delivered", metadata: ["route": "\(message.envelope.route)", "rcpt_count": "\(delivered)", "reply": "\(outcome.summary)"])
        case .finished:
            logger.warning("Message failed", metadata: ["route": "\(message.envelope.route)", "failed": "\(failed.count)", "delivered": "\(delivered)", "reply": "\(outcome.summary)"])
        case .deferred(let until):
            logger.notice("Message deferred", metadata: ["route": "\(message.envelope.route)", "pending": "\(stillPending.count)", "retry_at": "\(until)", "reply": "\(outcome.summary)"])
        }
        if !failed.isEmpty {
            await bounce(message, failed: failed, headers: bounceHeaders ?? ByteBuffer(), logger: logger)
        }
    }

    /// The original header section, for the DSN's text/rfc822-headers part.
    private func headerSection(of id: RelayQueueID) -> ByteBuffer? {
        guard let reader = try? store.openContent(id: id) else { return nil }
        defer { reader.close() }
        var prefix = ByteBuffer()
        while prefix.readableBytes < 256 * 1024, var chunk = try? reader.read(maxLength: 64 * 1024) {
            prefix.writeBuffer(&chunk)
            if prefix.readableBytesView.firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        return RelayDeliveryStatusNotification.headerSection(of: prefix)
    }

    private func bounce(_ message: RelayQueuedMessage, failed: [RelayRecipient], headers: ByteBuffer, logger: Logger) async {
        // Never bounce a bounce (RFC 5321 §4.5.5), and follow the configured target.
        let to: String?
        switch settings.bounces {
        case .none: to = nil
        case .sender: to = message.envelope.sender.isEmpty ? nil : message.envelope.sender
        case .operator: to = message.envelope.sender.isEmpty ? nil : settings.operatorAddress
        }
        guard let to else { return }
        let arrival = now()
        let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(arrival.timeIntervalSince1970 * 1000))
        let content = RelayDeliveryStatusNotification.build(
            reportingHost: settings.hostname, from: settings.bounceSenders[message.envelope.route], originalSender: to, originalQueueID: message.id, arrivalDate: message.receivedAt,
            now: arrival, failedRecipients: failed.map { ($0.address, $0.lastReply ?? "") }, originalHeaders: headers, dsnID: id)
        var envelope = message.envelope
        envelope.sender = ""
        envelope.recipients = [to]
        envelope.clientName = "m365-relay"
        envelope.clientAddress = "127.0.0.1"
        envelope.heloName = settings.hostname
        envelope.authenticatedAs = nil
        do {
            _ = try await store.enqueue(id: id, content: content, envelope: envelope, now: arrival)
            logger.notice("Delivery status notification queued", metadata: ["dsn_id": "\(id)", "to": "\(to)"])
            wakeSignal.signal()
        } catch {
            logger.error("Could not queue a delivery status notification", metadata: ["error": "\(error)"])
        }
    }
}
