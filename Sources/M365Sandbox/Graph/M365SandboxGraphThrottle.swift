import Foundation

/// Graph's mailbox throttling per app and mailbox: concurrent requests and
/// requests in a sliding 10 minutes. Pure: time is passed in.
/// - SeeAlso: https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
struct M365SandboxGraphThrottle: Sendable {
    enum Decision: Hashable, Sendable {
        case admitted
        /// Too many requests in flight (`MailboxConcurrency`).
        case concurrency(retryAfter: Int)
        /// Too many requests in the window (`ApplicationThrottled`).
        case rate(retryAfter: Int)
    }

    var concurrency: Int
    var requestsPerWindow: Int
    /// Retry-After for a concurrency refusal: about how long a request takes.
    var typicalRequestSeconds: Int
    private static let window: TimeInterval = 600

    private var inFlight: [String: Int] = [:]
    private var requests: [String: [Date]] = [:]

    init(concurrency: Int, requestsPerWindow: Int, typicalRequestSeconds: Int) {
        self.concurrency = concurrency
        self.requestsPerWindow = requestsPerWindow
        self.typicalRequestSeconds = max(1, typicalRequestSeconds)
    }

    static func key(app: String?, mailbox: String) -> String { "\(app ?? "-")|\(mailbox.lowercased())" }

    /// Admits a request (then it must be ``finished(_:)``) or says when to retry.
    mutating func begin(_ key: String, now: Date) -> Decision {
        var times = requests[key, default: []].filter { $0 > now.addingTimeInterval(-Self.window) }
        defer { requests[key] = times }
        if times.count >= requestsPerWindow, let oldest = times.first {
            return .rate(retryAfter: max(1, Int(oldest.addingTimeInterval(Self.window).timeIntervalSince(now).rounded(.up))))
        }
        if inFlight[key, default: 0] >= concurrency {
            return .concurrency(retryAfter: typicalRequestSeconds)
        }
        inFlight[key, default: 0] += 1
        times.append(now)
        return .admitted
    }

    mutating func finished(_ key: String) {
        inFlight[key, default: 1] -= 1
        if inFlight[key] == 0 { inFlight[key] = nil }
    }
}
