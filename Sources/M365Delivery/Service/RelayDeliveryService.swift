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
        /// What the service knows of each route: quotas, fallback, size limit, tenant.
        public var routes: [String: RelayDeliveryRoute] = [:]
        /// How long a route stays paused after Microsoft refused its
        /// configuration before it is tried again (`delivery.route_pause`).
        public var routePause: TimeInterval = 300
        /// How long a tenant's routes stay stopped after Microsoft refused the
        /// tenant's traffic (`delivery.tenant_stop`).
        public var tenantStop: TimeInterval = 3600
        /// When a mailbox's connections are all busy, how soon its message is looked at again.
        public var slotRecheck: TimeInterval = 0.25
        /// Retry delay after a throttle that named no `Retry-After` (`432 4.3.2`).
        public var throttleRetry: TimeInterval = 10
        /// DKIM signing (`dkim`): messages of a domain with a key leave signed. Nil: none.
        public var dkim: RelayDKIMSigner?
        /// Metrics and alerts: told of every attempt, throttle, hold and bounce.
        public var observer: (any RelayEventObserver)?

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
    /// Paused routes and stopped tenants.
    public let health: RelayRouteHealth
    /// One quota governor per route, keyed by sending mailbox inside.
    private let governors: NIOLockedValueBox<[String: M365QuotaGovernor]>
    /// Routes held since they last delivered: their next delivery is announced as a recovery.
    private let heldRoutes = NIOLockedValueBox(Set<String>())

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
        self.health = RelayRouteHealth(tenants: settings.routes.compactMapValues(\.tenant))
        self.governors = NIOLockedValueBox(settings.routes.mapValues { M365QuotaGovernor(quotas: $0.quotas, margin: $0.quotaMargin) })
    }

    /// Quota use of a sending mailbox on a route (for the API and tests).
    public func quotaUsage(route: String, mailbox: String) -> M365QuotaGovernor.Usage? {
        let at = now()
        return governors.withLockedValue { $0[route]?.usage(mailbox: mailbox, now: at) }
    }

    /// Every sending mailbox the governor of `route` tracks, with its quota use (for the API, metrics and the dashboard).
    public func quotaUsage(route: String) -> [(mailbox: String, usage: M365QuotaGovernor.Usage)] {
        let at = now()
        return governors.withLockedValue { governors in
            guard let governor = governors[route] else { return [] }
            return governor.mailboxNames.sorted().map { ($0, governor.usage(mailbox: $0, now: at)) }
        }
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
        var logger = self.logger
        logger[metadataKey: "queue_id"] = "\(message.id)"
        let routeName = message.envelope.route
        logger[metadataKey: "route"] = "\(routeName)"
        let route = settings.routes[routeName]
        let nothingDelivered = !message.recipients.contains { $0.status == .delivered }
        let pending = message.pendingRecipients

        if let route, let transport = transports[routeName] {
            // Too large for this route: its fallback takes it, or nothing can.
            if message.size > route.maxMessageSize {
                if let fallback = route.fallback, nothingDelivered {
                    await postpone(message, until: now(), route: fallback, logger: logger, because: "larger than the route's max_message_size (\(message.size) > \(route.maxMessageSize) octets)")
                } else {
                    await record(message, pending: pending, outcome: .all(pending, .permanentFailure,
                        "552 5.3.4 Message size \(message.size) exceeds the route's limit of \(route.maxMessageSize) octets"), started: now(), logger: logger)
                }
                return
            }
            // A paused route: the fallback, or wait in the queue until the hold ends.
            if let hold = health.hold(on: routeName, now: now()) {
                if let fallback = route.fallback, nothingDelivered, health.hold(on: fallback, now: now()) == nil {
                    await postpone(message, until: now(), route: fallback, logger: logger, because: "route \(routeName) is \(hold.kind.rawValue): \(hold.reason)")
                } else {
                    await postpone(message, until: hold.until, route: nil, logger: logger, because: "route is \(hold.kind.rawValue) until \(hold.until)")
                }
                return
            }
            // The governor: no budget means the message waits in the queue, not here.
            let mailbox = sendingMailbox(of: message, on: route)
            let decision = governors.withLockedValue { $0[routeName]?.request(mailbox: mailbox, recipients: pending.count, now: now()) }
            var ticket: M365QuotaGovernor.Ticket?
            switch decision {
            case .proceed(let issued)?:
                ticket = issued
            case .wait(let until, let reason)?:
                await postpone(message, until: until, route: nil, logger: logger, level: .debug, because: "mailbox \(mailbox) waits for \(reason.rawValue)")
                return
            case .waitForSlot?:
                await postpone(message, until: now().addingTimeInterval(settings.slotRecheck), route: nil, logger: logger, level: .trace, because: "every connection of mailbox \(mailbox) is busy")
                return
            case .tooManyRecipients(let maximum)?:
                await record(message, pending: pending, outcome: .all(pending, .permanentFailure,
                    "554 5.5.3 The message has more recipients than the mailbox may send in 24 hours (\(maximum))"), started: now(), logger: logger)
                return
            case nil:
                break
            }
            let started = now()
            let outcome = await attempt(message, pending: pending, transport: transport)
            if let ticket {
                governors.withLockedValue { $0[routeName]?.finished(ticket, outcome: outcome.submitted ? .submitted : .notSubmitted, now: now()) }
            }
            await record(message, pending: pending, outcome: outcome, started: started, route: route, mailbox: mailbox, nothingDelivered: nothingDelivered, logger: logger)
        } else if let transport = transports[routeName] {
            let started = now()
            let outcome = await attempt(message, pending: pending, transport: transport)
            await record(message, pending: pending, outcome: outcome, started: started, logger: logger)
        } else {
            await record(message, pending: pending, outcome: .all(pending, .temporaryFailure, "Route \(routeName) is not configured"), started: now(), logger: logger)
        }
    }

    /// How a transport writes Microsoft's reply into a recipient's result.
    static func replyText(_ reply: M365Reply) -> String {
        switch reply {
        case .smtp(let reply): reply.description
        case .graph(let response): response.description
        case .connectionFailed(let failure): failure.rawValue
        case .tokenRefused(let failure): failure.description
        }
    }

    private func attempt(_ message: RelayQueuedMessage, pending: [String], transport: any RelayTransport) async -> RelayTransportOutcome {
        do {
            var content = try store.openContent(id: message.id)
            defer { content.close() }
            if let dkim = settings.dkim {
                // One pass to hash (a second reader), then the signature fields ahead of the content.
                content = try dkim.signing(content, of: message, open: { try store.openContent(id: message.id) }, now: now())
            }
            return await transport.deliver(message, recipients: pending, content: content)
        } catch {
            return .all(pending, .temporaryFailure, "Could not read the queued message: \(error)")
        }
    }

    /// The mailbox a message is sent as on a route: the route's `mailbox`, else
    /// the envelope sender; the bounce mailbox for the null sender.
    private func sendingMailbox(of message: RelayQueuedMessage, on route: RelayDeliveryRoute) -> String {
        if let mailbox = route.mailbox { return mailbox }
        if message.envelope.sender.isEmpty { return settings.bounceSenders[route.name] ?? "" }
        return message.envelope.sender
    }

    private func postpone(
        _ message: RelayQueuedMessage, until: Date, route: String?, logger: Logger, level: Logger.Level = .notice, because reason: String
    ) async {
        do {
            try await store.postpone(id: message.id, owner: owner, until: until, route: route)
            if let route {
                logger.notice("Message moved to fallback route", metadata: ["fallback": "\(route)", "reason": "\(reason)"])
                wakeSignal.signal()
            } else {
                logger.log(level: level, "Message waits", metadata: ["until": "\(until)", "reason": "\(reason)"])
            }
        } catch {
            logger.error("Could not postpone a message", metadata: ["error": "\(error)"])
        }
    }

    /// Classifies Microsoft's answer, acts on it (governor, route health), and records the attempt.
    private func record(
        _ message: RelayQueuedMessage, pending: [String], outcome: RelayTransportOutcome, started: Date,
        route: RelayDeliveryRoute? = nil, mailbox: String? = nil, nothingDelivered: Bool = false, logger: Logger
    ) async {
        let finished = now()
        let classification = outcome.reply.map {
            // Transports refresh a refused token themselves, once: what reaches here stands.
            M365ReplyClassification.classify($0, on: route?.transport ?? .smtp, canRefreshToken: false)
        }
        let routeName = message.envelope.route
        var deferUntil: Date?
        var reroute: String?
        var forcePermanent = false
        switch classification?.action {
        case .retry(let retryAfter?)?:
            deferUntil = finished.addingTimeInterval(retryAfter)
        case .slowMailbox(let retryAfter)?:
            if let mailbox {
                governors.withLockedValue { $0[routeName]?.throttled(mailbox: mailbox, retryAfter: retryAfter, now: finished) }
            }
            deferUntil = finished.addingTimeInterval(retryAfter ?? settings.throttleRetry)
            logger.warning("Microsoft throttled the sending mailbox", metadata: ["mailbox": "\(mailbox ?? "")", "retry_after": "\(retryAfter.map { "\($0)" } ?? "none")", "reply": "\(outcome.summary)"])
            settings.observer?.observe(.throttled(route: routeName, mailbox: mailbox, retryAfter: retryAfter, reply: outcome.summary))
        case .pauseMailboxUntilWindowFrees?:
            if let mailbox {
                deferUntil = governors.withLockedValue { $0[routeName]?.recipientQuotaExhausted(mailbox: mailbox, now: finished) }
            }
            logger.warning("Sending mailbox paused: daily recipient quota reached", metadata: ["mailbox": "\(mailbox ?? "")", "until": "\(deferUntil.map { "\($0)" } ?? "?")"])
            settings.observer?.observe(.throttled(route: routeName, mailbox: mailbox, retryAfter: deferUntil.map { $0.timeIntervalSince(finished) }, reply: outcome.summary))
        case .pauseRoute?, .stopTenant?:
            let stop = classification?.action == .stopTenant
            let until = finished.addingTimeInterval(stop ? settings.tenantStop : settings.routePause)
            let reason = "\(outcome.summary) (\(classification?.meaning ?? ""))"
            let held = stop
                ? health.stopTenant(of: routeName, until: until, reason: reason)
                : health.pause(route: routeName, until: until, reason: reason)
            logger.critical(stop ? "ALERT: Microsoft refuses the tenant's traffic; its routes are stopped" : "ALERT: route paused",
                metadata: ["routes": "\(held.joined(separator: ","))", "until": "\(until)", "reply": "\(outcome.summary)",
                           "meaning": "\(classification?.meaning ?? "")", "remedy": "\(classification?.remedy ?? "")"])
            heldRoutes.withLockedValue { $0.formUnion(held) }
            settings.observer?.observe(.routeHeld(routes: held, stopped: stop, until: until, reason: reason))
            if let fallback = route?.fallback, nothingDelivered, health.hold(on: fallback, now: finished) == nil {
                reroute = fallback
                deferUntil = finished
            } else {
                deferUntil = until
            }
        case .failMessage?:
            forcePermanent = true
        case .tooLargeForRoute?:
            if let fallback = route?.fallback, nothingDelivered {
                reroute = fallback
                deferUntil = finished
            } else {
                forcePermanent = true
            }
        case .refreshTokenAndRetry?, .retry(nil)?, .delivered?, nil:
            break
        }

        // A reply about the route or the mailbox (a pause, a throttle, a quota,
        // a size the fallback can take) says nothing against the recipients:
        // those it refused stay pending. Refusals of their own (an unknown
        // recipient at RCPT) carry another reply and stand.
        let holdsRecipients = deferUntil != nil || reroute != nil
        let decidingReplies: Set<String> = [outcome.summary, outcome.reply.map(Self.replyText) ?? outcome.summary]
        var updates: [RelayRecipient] = []
        var stillPending: [RelayRecipient] = []
        for address in pending {
            var result = outcome.recipients.first { $0.address == address }
            if holdsRecipients, result?.status == .permanentFailure, let reply = result?.reply, decidingReplies.contains(reply) {
                result?.status = .temporaryFailure
            }
            switch result?.status {
            case .delivered?: updates.append(RelayRecipient(address: address, status: .delivered, lastReply: result?.reply))
            case .permanentFailure?: updates.append(RelayRecipient(address: address, status: .failed, lastReply: result?.reply))
            case .temporaryFailure? where forcePermanent:
                updates.append(RelayRecipient(address: address, status: .failed, lastReply: result?.reply ?? outcome.summary))
            case .temporaryFailure?, nil: stillPending.append(RelayRecipient(address: address, status: .pending, lastReply: result?.reply ?? outcome.summary))
            }
        }
        let disposition: RelayAttemptResult.Disposition
        if stillPending.isEmpty {
            disposition = .finished
            reroute = nil
        } else if let deferUntil {
            // Microsoft's timing (Retry-After, a paused route or mailbox), not the
            // schedule's: but never past the message's maximum age.
            disposition = .deferred(until: min(deferUntil, message.receivedAt.addingTimeInterval(settings.schedule.maxAge)))
            updates += stillPending
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
        var summary = outcome.summary
        if let upstreamID = outcome.upstreamID, !summary.contains(upstreamID) { summary += " [\(upstreamID)]" }

        let replyClass = classification?.action.className ?? (outcome.recipients.allSatisfy { $0.status == .delivered } ? "ok" : "local")
        let detail = RelayAttemptDetail(
            transport: route?.mode ?? settings.routes[routeName]?.mode, sendingMailbox: outcome.sendingMailbox ?? mailbox,
            upstreamID: outcome.upstreamID, replyClass: replyClass)
        do {
            try await store.recordAttempt(id: message.id, owner: owner, result: RelayAttemptResult(
                startedAt: started, finishedAt: finished, route: routeName,
                recipientUpdates: updates, summary: summary, disposition: disposition, reroute: reroute, detail: detail))
        } catch {
            logger.error("Could not record a delivery attempt", metadata: ["error": "\(error)"])
            return
        }
        let delivered = updates.filter { $0.status == .delivered }.count
        if let observer = settings.observer {
            let reportOutcome: RelayAttemptReport.Outcome
            switch disposition {
            case .finished: reportOutcome = failed.isEmpty ? .delivered : .failed
            case .deferred: reportOutcome = .deferred
            }
            observer.observe(.attemptFinished(RelayAttemptReport(
                queueID: message.id.rawValue, client: message.envelope.clientName, route: routeName, transport: detail.transport ?? "none",
                sendingMailbox: detail.sendingMailbox, outcome: reportOutcome, replyClass: replyClass,
                duration: finished.timeIntervalSince(started), sinceReceived: finished.timeIntervalSince(message.receivedAt))))
        }
        if delivered > 0, heldRoutes.withLockedValue({ $0.remove(routeName) != nil }) {
            logger.notice("Route delivers again", metadata: ["route": "\(routeName)"])
            settings.observer?.observe(.routeRecovered(route: routeName))
        }
        var metadata: Logger.Metadata = ["reply": "\(summary)"]
        if let mailbox { metadata["mailbox"] = "\(mailbox)" }
        if let classification, classification.action != .delivered { metadata["meaning"] = "\(classification.meaning)" }
        switch disposition {
        case .finished where failed.isEmpty:
            metadata["rcpt_count"] = "\(delivered)"
            logger.info("Message delivered", metadata: metadata)
        case .finished:
            metadata["failed"] = "\(failed.count)"
            metadata["delivered"] = "\(delivered)"
            logger.warning("Message failed", metadata: metadata)
        case .deferred(let until):
            metadata["pending"] = "\(stillPending.count)"
            metadata["retry_at"] = "\(until)"
            if let reroute { metadata["fallback"] = "\(reroute)" }
            logger.notice(reroute == nil ? "Message deferred" : "Message deferred to the fallback route", metadata: metadata)
            if reroute != nil || until <= finished { wakeSignal.signal() }
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
        // A new envelope, not an edited copy: nothing of the original's session carries over.
        let envelope = RelayEnvelope(
            sender: "", recipients: [to], clientName: "m365-relay", clientAddress: "127.0.0.1", heloName: settings.hostname,
            route: message.envelope.route, smtpUTF8: message.envelope.smtpUTF8, body8Bit: message.envelope.body8Bit,
            policyNotes: ["delivery status notification for \(message.id)"])
        do {
            _ = try await store.enqueue(id: id, content: content, envelope: envelope, now: arrival)
            logger.notice("Delivery status notification queued", metadata: ["dsn_id": "\(id)", "to": "\(to)"])
            settings.observer?.observe(.bounced(queueID: message.id.rawValue, dsnID: id.rawValue))
            if let trace = store as? any RelayTraceStore {
                do {
                    try await trace.recordEvent(
                        RelayTraceEvent(at: arrival, kind: .bounced, summary: "Delivery status notification \(id) queued to \(to)",
                                        details: ["dsn_id": id.rawValue, "to": to]),
                        for: message.id)
                } catch {
                    logger.warning("Could not record the bounce in the trace", metadata: ["error": "\(error)"])
                }
            }
            wakeSignal.signal()
        } catch {
            logger.error("Could not queue a delivery status notification", metadata: ["error": "\(error)"])
        }
    }
}
