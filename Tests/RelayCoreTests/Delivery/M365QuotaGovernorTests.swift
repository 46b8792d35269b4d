import Foundation
import Testing
@testable import RelayCore

/// The quota governor against Microsoft 365's documented quotas (M365.md,
/// Quotas) paced by the default 5 % margin. The clock is a plain `Date` the
/// tests advance.
@Suite("M365 quota governor")
struct M365QuotaGovernorTests {
    typealias Governor = M365QuotaGovernor
    typealias Quotas = RelayConfiguration.Quotas

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let minute: TimeInterval = 60
    static let hour: TimeInterval = 3600
    static let day: TimeInterval = 86_400
    static let smtp = Quotas.defaults(for: .smtp)
    static let graph = Quotas.defaults(for: .graph)

    static func at(_ seconds: TimeInterval) -> Date { t0.addingTimeInterval(seconds) }

    /// Ask, and when admitted finish at once (the concurrency slot is not under test).
    @discardableResult
    static func send(_ governor: inout Governor, _ mailbox: String = "scanner@contoso.com", recipients: Int = 1, requests: Int = 1, at now: Date) -> Governor.Decision {
        let decision = governor.request(mailbox: mailbox, recipients: recipients, requests: requests, now: now)
        if case .proceed(let ticket) = decision { governor.finished(ticket, now: now) }
        return decision
    }

    static func ticket(_ decision: Governor.Decision, sourceLocation: SourceLocation = #_sourceLocation) throws -> Governor.Ticket {
        guard case .proceed(let ticket) = decision else {
            Issue.record("expected .proceed, got \(decision)", sourceLocation: sourceLocation)
            throw NotAdmitted()
        }
        return ticket
    }

    struct NotAdmitted: Error {}

    static func proceeds(_ decision: Governor.Decision) -> Bool {
        if case .proceed = decision { return true }
        return false
    }

    // MARK: - pacing

    @Test(arguments: [
        // quota, margin, paced limit
        (30, 0.05, 28),             // 28.5 rounds down
        (10_000, 0.05, 9_500),
        (10_000, 0.10, 9_000),
        (4, 0.05, 3),
        (1, 0.05, 1),               // never below 1
        (30, 0.99, 1),
        (30, 0.0, 30),
        (30, 0.5, 15),
        (30, -0.2, 30),             // nonsense margins count as none
        (30, 1.0, 30),
        (30, Double.nan, 30),
    ])
    func pacedLimit(quota: Int, margin: Double, expected: Int) {
        #expect(Governor.Limits.paced(quota, margin: margin) == expected)
    }

    @Test func defaultLimitsPerMode() {
        let smtp = Governor.Limits(quotas: Self.smtp, margin: 0.05)
        #expect(smtp.concurrency == 3)              // concurrency is not reduced by the margin
        #expect(smtp.messagesPerMinute == 28)
        #expect(smtp.recipientsPerDay == 9_500)
        #expect(smtp.requestsPer10Minutes == nil)
        let graph = Governor.Limits(quotas: Self.graph, margin: 0.05)
        #expect(graph.concurrency == 4)
        #expect(graph.requestsPer10Minutes == 9_500)
        let connector = Governor.Limits(quotas: Quotas.defaults(for: .connector), margin: 0.05)
        #expect(connector == Governor.Limits(quotas: Quotas(), margin: 0))

        var route = RelayConfiguration.Route(name: "m365", mode: .smtp)
        route.quotaMargin = 0.10
        #expect(Governor(route: route).limits.messagesPerMinute == 27)
    }

    // MARK: - messages per minute

    enum Expected: Sendable, CustomStringConvertible {
        case proceed
        /// Wait until this many seconds after t0, for this reason.
        case wait(TimeInterval, Governor.WaitReason)
        case waitForSlot
        case tooManyRecipients(Int)

        var description: String {
            switch self {
            case .proceed: "proceed"
            case .wait(let seconds, let reason): "wait until t0+\(seconds)s (\(reason))"
            case .waitForSlot: "wait for a slot"
            case .tooManyRecipients(let maximum): "too many recipients (max \(maximum))"
            }
        }

        func check(_ decision: Governor.Decision, sourceLocation: SourceLocation = #_sourceLocation) {
            switch self {
            case .proceed:
                #expect(M365QuotaGovernorTests.proceeds(decision), "\(decision)", sourceLocation: sourceLocation)
            case .wait(let seconds, let reason):
                #expect(decision == .wait(until: M365QuotaGovernorTests.at(seconds), reason: reason), sourceLocation: sourceLocation)
            case .waitForSlot:
                #expect(decision == .waitForSlot, sourceLocation: sourceLocation)
            case .tooManyRecipients(let maximum):
                #expect(decision == .tooManyRecipients(maximum: maximum), sourceLocation: sourceLocation)
            }
        }
    }

    @Test(arguments: [
        // 28 messages were sent at t0+0s, 1s, ..., 27s. The next one asks at:
        (28.0, Expected.wait(60, .messagesPerMinute)),      // the oldest leaves at t0+60
        (59.999, .wait(60, .messagesPerMinute)),
        (60.0, .proceed),                                    // exactly when it leaves
        (75.5, .proceed),
    ])
    func twentyEightPerMinute(askAt: TimeInterval, expected: Expected) {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for second in 0..<28 {
            #expect(Self.proceeds(Self.send(&governor, at: Self.at(TimeInterval(second)))))
        }
        expected.check(Self.send(&governor, at: Self.at(askAt)))
    }

    @Test func theWindowSlidesOneMessageAtATime() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for second in 0..<28 { Self.send(&governor, at: Self.at(TimeInterval(second))) }
        #expect(Self.proceeds(Self.send(&governor, at: Self.at(60))))
        // t0+0s has left, t0+1s has not: the window is full again until t0+61.
        #expect(Self.send(&governor, at: Self.at(60)) == .wait(until: Self.at(61), reason: .messagesPerMinute))
        #expect(governor.usage(mailbox: "scanner@contoso.com", now: Self.at(60)).messagesPerMinute
            == .init(used: 28, limit: 28))
    }

    @Test func aBurstAtOneInstantIsOneEntry() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for _ in 0..<28 { #expect(Self.proceeds(Self.send(&governor, at: Self.t0))) }
        #expect(Self.send(&governor, at: Self.at(1)) == .wait(until: Self.at(60), reason: .messagesPerMinute))
        #expect(governor.storedEntries(mailbox: "scanner@contoso.com") == 2)   // one per window
    }

    // MARK: - concurrency

    @Test func threeConnectionsThenWaitForASlot() throws {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        let first = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))
        _ = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))
        _ = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(1)) == .waitForSlot)
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(1)).concurrency == .init(used: 3, limit: 3))

        governor.finished(first, now: Self.at(2))
        let fourth = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(2)))
        #expect(fourth.id != first.id)
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(2)) == .waitForSlot)

        // Finishing the same ticket again frees nothing.
        governor.finished(first, now: Self.at(3))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(3)) == .waitForSlot)
    }

    @Test func aTimeLimitOutranksAFullSlotSet() throws {
        // Both block: the answer with a time is the useful one.
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for _ in 0..<3 { _ = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0)) }
        governor.pause(mailbox: "a@contoso.com", until: Self.at(30))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(1)) == .wait(until: Self.at(30), reason: .paused))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(30)) == .waitForSlot)
    }

    // MARK: - recipients per rolling day

    /// 19 messages of 500 recipients, one a minute from t0: 9,500, the paced
    /// daily limit (10,000 less 5 %).
    static func fullDay() -> Governor {
        var governor = Governor(quotas: smtp, margin: 0.05)
        for index in 0..<19 {
            let decision = send(&governor, recipients: 500, at: at(TimeInterval(index) * minute))
            #expect(proceeds(decision))
        }
        return governor
    }

    @Test(arguments: [
        // recipients, asked at (seconds after t0), expected
        (1, 3 * hour, Expected.wait(day, .recipientsPerDay)),                  // first 500 leave at t0+24h
        (500, 3 * hour, .wait(day, .recipientsPerDay)),
        (501, 3 * hour, .wait(minute + day, .recipientsPerDay)),               // needs the second batch too
        (1, day - 0.001, .wait(day, .recipientsPerDay)),
        (1, day, .proceed),
        (500, day, .proceed),
        (501, day, .wait(minute + day, .recipientsPerDay)),
        (1_000, minute + day, .proceed),
        (1_001, minute + day, .wait(2 * minute + day, .recipientsPerDay)),
        (9_500, 3 * hour, .wait(18 * minute + day, .recipientsPerDay)),       // the whole budget: when all have left
        (9_800, 3 * hour, .wait(18 * minute + day, .recipientsPerDay)),       // over the paced limit, within the quota: an empty window
        (9_800, 18 * minute + day, .proceed),
        (10_000, 3 * hour, .wait(18 * minute + day, .recipientsPerDay)),
        (10_001, 3 * hour, .tooManyRecipients(9_500)),                        // over the quota itself: never, split it
        (10_001, 2 * day, .tooManyRecipients(9_500)),
    ])
    func tenThousandRecipientsPerDay(recipients: Int, askAt: TimeInterval, expected: Expected) {
        var governor = Self.fullDay()
        expected.check(Self.send(&governor, recipients: recipients, at: Self.at(askAt)))
    }

    @Test func anOversizedMessageFillsTheWindowOnItsOwn() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        #expect(Self.proceeds(Self.send(&governor, recipients: 9_900, at: Self.t0)))
        #expect(governor.usage(mailbox: "scanner@contoso.com", now: Self.t0).recipientsPerDay == .init(used: 9_900, limit: 9_500))
        #expect(Self.send(&governor, recipients: 1, at: Self.at(1)) == .wait(until: Self.at(Self.day), reason: .recipientsPerDay))
    }

    @Test func aLowDailyQuotaAsksToSplit() {
        var governor = Governor(quotas: Quotas(recipientsPerDay: 100), margin: 0.05)
        #expect(Self.send(&governor, recipients: 101, at: Self.t0) == .tooManyRecipients(maximum: 95))
        #expect(Self.proceeds(Self.send(&governor, recipients: 100, at: Self.t0)))   // within the quota, the window was empty
        #expect(governor.trackedMailboxes == 1)
        // Asking with too many never creates state for a mailbox.
        #expect(Self.send(&governor, "other@contoso.com", recipients: 500, at: Self.t0) == .tooManyRecipients(maximum: 95))
        #expect(governor.trackedMailboxes == 1)
    }

    @Test func aSubmissionThatNeverReachedMicrosoftGivesItsCountsBack() throws {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        let kept = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 300, now: Self.t0))
        let failed = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 200, now: Self.t0))
        governor.finished(kept, now: Self.at(1))
        governor.finished(failed, outcome: .notSubmitted, now: Self.at(1))
        governor.finished(failed, outcome: .notSubmitted, now: Self.at(1))   // twice: no second refund
        let usage = governor.usage(mailbox: "a@contoso.com", now: Self.at(1))
        #expect(usage.recipientsPerDay.used == 300)
        #expect(usage.messagesPerMinute.used == 1)
        #expect(usage.concurrency.used == 0)
    }

    @Test func aSlowSubmissionCountsFromWhenMicrosoftAcceptedIt() throws {
        // Two a minute. The first submission takes 5 s (a new connection on a
        // loaded host): Microsoft counts it at t0+5, so the third message may
        // only go at t0+65, not at t0+60 when its admission would have left.
        var governor = Governor(quotas: Quotas(messagesPerMinute: 2), margin: 0)
        let slow = try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))
        Self.send(&governor, "a@contoso.com", at: Self.at(1))
        governor.finished(slow, now: Self.at(5))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(60)) == .wait(until: Self.at(61), reason: .messagesPerMinute))
        #expect(Self.proceeds(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(61))))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(62)) == .wait(until: Self.at(65), reason: .messagesPerMinute))
    }

    // MARK: - Graph

    @Test func graphAllowsFourConcurrentRequests() throws {
        var governor = Governor(quotas: Self.graph, margin: 0.05)
        var tickets: [Governor.Ticket] = []
        for _ in 0..<4 { tickets.append(try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))) }
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0) == .waitForSlot)
        governor.finished(tickets[2], now: Self.at(1))
        #expect(Self.proceeds(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(1))))
    }

    @Test(arguments: [
        // 9,500 single requests, 16 a second from t0 (the last 12 at t0+593s). Next:
        (1, 594.0, Expected.wait(600, .requestsPer10Minutes)),    // the 16 of t0 leave at t0+600
        (1, 599.999, .wait(600, .requestsPer10Minutes)),
        (16, 600.0, .proceed),
        (17, 600.0, .wait(601, .requestsPer10Minutes)),
        (32, 601.0, .proceed),
        (33, 601.0, .wait(602, .requestsPer10Minutes)),
    ])
    func tenThousandRequestsPerTenMinutes(requests: Int, askAt: TimeInterval, expected: Expected) {
        var governor = Governor(quotas: Quotas(connections: 4, requestsPer10Minutes: 10_000), margin: 0.05)
        for index in 0..<9_500 {
            let decision = Self.send(&governor, requests: 1, at: Self.at(TimeInterval(index / 16)))
            if !Self.proceeds(decision) {
                Issue.record("request \(index) refused: \(decision)")
                return
            }
        }
        #expect(governor.usage(mailbox: "scanner@contoso.com", now: Self.at(594)).requestsPer10Minutes == .init(used: 9_500, limit: 9_500))
        #expect(governor.storedEntries(mailbox: "scanner@contoso.com") == 594)    // one (time, count) pair per second
        expected.check(Self.send(&governor, requests: requests, at: Self.at(askAt)))
    }

    @Test func theLatestConstraintDecidesTheWait() {
        var governor = Governor(quotas: Self.graph, margin: 0.05)
        // One large message: a draft, an upload session and its chunks: 9,500 requests.
        #expect(Self.proceeds(Self.send(&governor, recipients: 1, requests: 9_500, at: Self.t0)))
        #expect(Self.send(&governor, at: Self.at(1)) == .wait(until: Self.at(600), reason: .requestsPer10Minutes))
        governor.pause(mailbox: "scanner@contoso.com", until: Self.at(700))
        #expect(Self.send(&governor, at: Self.at(1)) == .wait(until: Self.at(700), reason: .paused))
        #expect(Self.proceeds(Self.send(&governor, at: Self.at(700))))
    }

    // MARK: - throttling

    @Test(arguments: [
        // quotas, throttles at t0, then quiet seconds, expected concurrency
        (smtp, 1, 0.0, 2),
        (smtp, 2, 0.0, 1),
        (smtp, 5, 0.0, 1),            // never below 1
        (smtp, 1, 299.0, 2),
        (smtp, 1, 300.0, 3),          // one quiet interval: +1, back at the quota
        (smtp, 2, 300.0, 2),
        (smtp, 2, 599.0, 2),
        (smtp, 2, 600.0, 3),
        (smtp, 2, 86_400.0, 3),       // never above the quota
        (graph, 1, 0.0, 3),
        (graph, 3, 0.0, 1),
        (graph, 3, 900.0, 4),
    ])
    func throttlingLowersConcurrencyAndQuietRestoresIt(quotas: Quotas, throttles: Int, quiet: TimeInterval, expected: Int) {
        var governor = Governor(quotas: quotas, margin: 0.05)
        for _ in 0..<throttles { governor.throttled(mailbox: "a@contoso.com", retryAfter: nil, now: Self.t0) }
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(quiet)).concurrency.limit == expected)
    }

    @Test func aThrottleAppliesToTheSlotsInFlight() throws {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        var tickets: [Governor.Ticket] = []
        for _ in 0..<3 { tickets.append(try Self.ticket(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.t0))) }
        governor.throttled(mailbox: "a@contoso.com", retryAfter: nil, now: Self.at(1))   // 432 4.3.2
        governor.finished(tickets[0], now: Self.at(1))
        #expect(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(1)) == .waitForSlot)   // 2 in flight, limit 2
        governor.finished(tickets[1], now: Self.at(2))
        #expect(Self.proceeds(governor.request(mailbox: "a@contoso.com", recipients: 1, now: Self.at(2))))
    }

    @Test func aThrottleDuringRecoveryLowersFromThePartlyRecoveredValue() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        governor.throttled(mailbox: "a@contoso.com", retryAfter: nil, now: Self.t0)
        governor.throttled(mailbox: "a@contoso.com", retryAfter: nil, now: Self.t0)    // 1
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(300)).concurrency.limit == 2)
        governor.throttled(mailbox: "a@contoso.com", retryAfter: nil, now: Self.at(300)) // 2 - 1, clock restarts
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(599)).concurrency.limit == 1)
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(600)).concurrency.limit == 2)
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(900)).concurrency.limit == 3)
    }

    @Test(arguments: [
        // Retry-After 30 s given at t0+5s; the next request asks at:
        (5.0, Expected.wait(35, .paused)),
        (34.999, .wait(35, .paused)),
        (35.0, .proceed),                 // exactly that long
    ])
    func retryAfterPausesExactlyThatLong(askAt: TimeInterval, expected: Expected) {
        var governor = Governor(quotas: Self.graph, margin: 0.05)
        governor.throttled(mailbox: "scanner@contoso.com", retryAfter: 30, now: Self.at(5))    // Graph 429, Retry-After: 30
        expected.check(Self.send(&governor, at: Self.at(askAt)))
    }

    @Test func noRetryAfterMeansNoPause() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        governor.throttled(mailbox: "scanner@contoso.com", retryAfter: nil, now: Self.t0)
        governor.throttled(mailbox: "scanner@contoso.com", retryAfter: 0, now: Self.t0)
        #expect(Self.proceeds(Self.send(&governor, at: Self.t0)))
    }

    // MARK: - pauses

    @Test func pauseUntil() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        governor.pause(mailbox: "scanner@contoso.com", until: Self.at(Self.hour))
        #expect(Self.send(&governor, at: Self.t0) == .wait(until: Self.at(Self.hour), reason: .paused))
        governor.pause(mailbox: "scanner@contoso.com", until: Self.at(60))          // does not shorten it
        #expect(Self.send(&governor, at: Self.at(120)) == .wait(until: Self.at(Self.hour), reason: .paused))
        #expect(governor.usage(mailbox: "scanner@contoso.com", now: Self.at(120)).pausedUntil == Self.at(Self.hour))
        #expect(Self.proceeds(Self.send(&governor, at: Self.at(Self.hour))))
        #expect(governor.usage(mailbox: "scanner@contoso.com", now: Self.at(Self.hour)).pausedUntil == nil)

        governor.pause(mailbox: "scanner@contoso.com", until: Self.at(2 * Self.hour))
        governor.resume(mailbox: "scanner@contoso.com")
        #expect(Self.proceeds(Self.send(&governor, at: Self.at(Self.hour + 1))))
    }

    @Test func microsoftSaysTheDailyQuotaIsUsedUp() {
        // 554 5.2.0 SubmissionQuotaExceeded: pause until our oldest recipients leave the window.
        var governor = Self.fullDay()
        #expect(governor.recipientQuotaExhausted(mailbox: "Scanner@contoso.com", now: Self.at(2 * Self.hour)) == Self.at(Self.day))
        #expect(Self.send(&governor, at: Self.at(2 * Self.hour)) == .wait(until: Self.at(Self.day), reason: .paused))
        // With nothing counted (someone else sends as the mailbox), probe an hour later.
        var fresh = Governor(quotas: Self.smtp, margin: 0.05)
        #expect(fresh.recipientQuotaExhausted(mailbox: "x@contoso.com", now: Self.t0) == Self.at(Self.hour))
    }

    // MARK: - mailboxes

    @Test func mailboxesAreIndependent() throws {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for second in 0..<28 { Self.send(&governor, "a@contoso.com", at: Self.at(TimeInterval(second))) }
        #expect(Self.send(&governor, "a@contoso.com", at: Self.at(30)) == .wait(until: Self.at(60), reason: .messagesPerMinute))
        #expect(Self.proceeds(Self.send(&governor, "b@contoso.com", at: Self.at(30))))

        governor.pause(mailbox: "a@contoso.com", until: Self.at(Self.day))
        governor.throttled(mailbox: "a@contoso.com", retryAfter: 600, now: Self.at(30))
        #expect(Self.proceeds(Self.send(&governor, "b@contoso.com", at: Self.at(31))))
        #expect(governor.usage(mailbox: "b@contoso.com", now: Self.at(31)).concurrency.limit == 3)

        var held: [Governor.Ticket] = []
        for _ in 0..<3 { held.append(try Self.ticket(governor.request(mailbox: "c@contoso.com", recipients: 1, now: Self.at(32)))) }
        #expect(governor.request(mailbox: "c@contoso.com", recipients: 1, now: Self.at(32)) == .waitForSlot)
        #expect(Self.proceeds(Self.send(&governor, "b@contoso.com", at: Self.at(32))))

        #expect(Self.proceeds(Self.send(&governor, "b@contoso.com", recipients: 9_400, at: Self.at(33))))
        #expect(governor.usage(mailbox: "a@contoso.com", now: Self.at(33)).recipientsPerDay.used == 28)
    }

    @Test(arguments: ["scanner@contoso.com", "Scanner@Contoso.com", "SCANNER@CONTOSO.COM"])
    func mailboxesCompareCaseInsensitively(spelling: String) throws {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for second in 0..<14 { Self.send(&governor, "Scanner@contoso.com", at: Self.at(TimeInterval(second))) }
        for second in 14..<28 { Self.send(&governor, "scanner@CONTOSO.com", at: Self.at(TimeInterval(second))) }
        #expect(Self.send(&governor, spelling, at: Self.at(30)) == .wait(until: Self.at(60), reason: .messagesPerMinute))
        #expect(governor.usage(mailbox: spelling, now: Self.at(30)).messagesPerMinute.used == 28)
        #expect(governor.trackedMailboxes == 1)
        let ticket = try Self.ticket(Self.send(&governor, spelling, at: Self.at(60)))
        #expect(ticket.mailbox == "scanner@contoso.com")
    }

    // MARK: - memory

    /// 100,000 messages of 1 to 5 recipients from one mailbox, each sent as
    /// soon as the governor allows (about a month of simulated time). Checked
    /// independently: no 60 s window ever holds more than 28 messages, no
    /// 24 h window more than 9,500 recipients; and the state stays bounded.
    @Test func aMonthOfSendingStaysWithinQuotaAndBoundedMemory() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        var now = Self.t0
        var sent: [(time: Date, recipients: Int)] = []
        var minuteStart = 0, dayStart = 0, minuteCount = 0, dayRecipients = 0
        var maxEntries = 0
        var waits = 0
        while sent.count < 100_000 {
            let recipients = sent.count % 5 + 1
            switch Self.send(&governor, recipients: recipients, at: now) {
            case .proceed:
                sent.append((now, recipients))
                minuteCount += 1
                dayRecipients += recipients
                while sent[minuteStart].time.addingTimeInterval(Self.minute) <= now { minuteCount -= 1; minuteStart += 1 }
                while sent[dayStart].time.addingTimeInterval(Self.day) <= now { dayRecipients -= sent[dayStart].recipients; dayStart += 1 }
                if minuteCount > 28 || dayRecipients > 9_500 {
                    Issue.record("over quota at send \(sent.count): \(minuteCount)/min, \(dayRecipients)/day")
                    return
                }
                maxEntries = max(maxEntries, governor.storedEntries(mailbox: "scanner@contoso.com"))
            case .wait(let until, _):
                #expect(until > now)
                waits += 1
                now = until
            case let other:
                Issue.record("unexpected \(other)")
                return
            }
        }
        let days = now.timeIntervalSince(Self.t0) / Self.day
        #expect(days > 30 && days < 33)                       // 3 recipients on average: about 3,167 messages a day
        #expect(maxEntries <= 28 + 9_500)
        #expect(maxEntries < 4_000)                            // about 3,167 messages in a day's window, plus the minute's
        #expect(waits > 0)

        // A day of silence later, nothing is remembered.
        governor.prune(now: now.addingTimeInterval(Self.day))
        #expect(governor.trackedMailboxes == 0)
    }

    @Test func idleMailboxesAreForgotten() {
        var governor = Governor(quotas: Self.smtp, margin: 0.05)
        for index in 0..<5_000 { Self.send(&governor, "device\(index)@contoso.com", at: Self.t0) }
        #expect(governor.trackedMailboxes == 5_000)
        // Without an explicit prune: the periodic sweep runs within max(1,024, mailboxes) calls.
        for second in 0..<5_001 {
            Self.send(&governor, "busy@contoso.com", at: Self.at(Self.day + TimeInterval(second) * 30))
        }
        #expect(governor.trackedMailboxes == 1)
        // A paused mailbox and one with a submission in flight are kept; the rest goes.
        governor.pause(mailbox: "held@contoso.com", until: Self.at(5 * Self.day))
        #expect(Self.proceeds(governor.request(mailbox: "open@contoso.com", recipients: 1, now: Self.at(3 * Self.day))))
        governor.prune(now: Self.at(4 * Self.day + Self.hour))
        #expect(governor.trackedMailboxes == 2)
        #expect(governor.storedEntries(mailbox: "busy@contoso.com") == 0)
    }
}
