import Foundation
import NIOConcurrencyHelpers
import SMTPCore

/// A failure the sandbox produces on purpose, for tests and benchmarks of the
/// relay's reactions: an SMTP reply at MAIL FROM or at the end of data, a
/// connection closed after the final dot with no reply, or a Graph error.
///
/// Encoded as JSON for `POST /sandbox/faults`, for example
/// `{"endpoint":"smtp","mailbox":"a@contoso.com","count":1,"at":"data","reply":"451 4.7.500 Access denied, please try again later"}`,
/// `{"endpoint":"connector","at":"data","close":true}` or
/// `{"endpoint":"graph","status":429,"code":"ApplicationThrottled","retryAfter":3}`.
public struct M365SandboxFault: Codable, Sendable, Hashable {
    public enum Endpoint: String, Codable, Sendable, Hashable {
        case smtp, connector, graph
    }

    /// When in an SMTP transaction the fault strikes.
    public enum Stage: String, Codable, Sendable, Hashable {
        /// In reply to MAIL FROM.
        case mail
        /// In reply to the final dot (the message is not stored).
        case data
    }

    public var endpoint: Endpoint
    /// Only this sending mailbox (SMTP AUTH identity, Graph user, or envelope
    /// sender at the connector); nil = every one.
    public var mailbox: String?
    /// How many times it strikes before it disarms.
    public var count: Int
    public var at: Stage
    /// The SMTP reply, e.g. `550 5.7.708 Access denied, traffic not accepted from this IP`.
    public var reply: String?
    /// Close the connection after the final dot without replying.
    public var close: Bool
    /// Graph: HTTP status, error code and message, and `Retry-After` seconds.
    public var status: Int?
    public var code: String?
    public var message: String?
    public var retryAfter: Int?

    /// An SMTP reply instead of the normal one.
    public static func smtpReply(_ reply: String, endpoint: Endpoint = .smtp, at stage: Stage = .data, mailbox: String? = nil, count: Int = 1) -> M365SandboxFault {
        M365SandboxFault(endpoint: endpoint, mailbox: mailbox, count: count, at: stage, reply: reply, close: false)
    }

    /// The connection closes after the final dot, with no reply; the message is not stored.
    public static func closeAfterData(endpoint: Endpoint = .smtp, mailbox: String? = nil, count: Int = 1) -> M365SandboxFault {
        M365SandboxFault(endpoint: endpoint, mailbox: mailbox, count: count, at: .data, reply: nil, close: true)
    }

    /// A Graph error reply `{"error":{"code":...,"message":...}}`.
    public static func graphError(status: Int, code: String, message: String? = nil, retryAfter: Int? = nil, mailbox: String? = nil, count: Int = 1) -> M365SandboxFault {
        M365SandboxFault(endpoint: .graph, mailbox: mailbox, count: count, at: .data, reply: nil, close: false, status: status, code: code, message: message, retryAfter: retryAfter)
    }

    public init(endpoint: Endpoint, mailbox: String? = nil, count: Int = 1, at: Stage = .data, reply: String? = nil, close: Bool = false,
                status: Int? = nil, code: String? = nil, message: String? = nil, retryAfter: Int? = nil) {
        self.endpoint = endpoint
        self.mailbox = mailbox
        self.count = count
        self.at = at
        self.reply = reply
        self.close = close
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        endpoint = try container.decode(Endpoint.self, forKey: .endpoint)
        mailbox = try container.decodeIfPresent(String.self, forKey: .mailbox)
        count = try container.decodeIfPresent(Int.self, forKey: .count) ?? 1
        at = try container.decodeIfPresent(Stage.self, forKey: .at) ?? .data
        reply = try container.decodeIfPresent(String.self, forKey: .reply)
        close = try container.decodeIfPresent(Bool.self, forKey: .close) ?? false
        status = try container.decodeIfPresent(Int.self, forKey: .status)
        code = try container.decodeIfPresent(String.self, forKey: .code)
        message = try container.decodeIfPresent(String.self, forKey: .message)
        retryAfter = try container.decodeIfPresent(Int.self, forKey: .retryAfter)
        if let problem = validationProblem { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: problem)) }
    }

    /// Why the fault cannot work, or nil.
    public var validationProblem: String? {
        guard count > 0 else { return "count must be at least 1" }
        switch endpoint {
        case .smtp, .connector:
            if close { return at == .data ? nil : "close applies only at data" }
            guard let reply else { return "an SMTP fault needs a reply or close" }
            return Self.parseReply(reply) == nil ? "reply must look like `550 5.7.708 text`" : nil
        case .graph:
            guard let status, (400...599).contains(status) else { return "a Graph fault needs a status 400-599" }
            return code == nil ? "a Graph fault needs a code" : nil
        }
    }

    /// The reply as an `SMTPReply`.
    var smtpReply: SMTPReply? { reply.flatMap(Self.parseReply) }

    /// `"550 5.7.708 Access denied"` -> code, enhanced status, text.
    static func parseReply(_ text: String) -> SMTPReply? {
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard let first = parts.first, first.count == 3, let code = Int(first), (200...599).contains(code) else { return nil }
        var rest = parts.count > 1 ? parts[1] : ""
        var enhanced: SMTPEnhancedStatus?
        let word = rest.prefix { $0 != " " }
        if let status = SMTPEnhancedStatus(parsing: word) {
            enhanced = status
            rest = rest.dropFirst(word.count).drop { $0 == " " }
        }
        return SMTPReply(code, enhanced, String(rest))
    }
}

/// The faults armed now; each strike uses one of its count.
final class M365SandboxFaults: Sendable {
    private let armed: NIOLockedValueBox<[M365SandboxFault]>

    init(_ initial: [M365SandboxFault]) {
        armed = NIOLockedValueBox(initial.filter { $0.validationProblem == nil })
    }

    func inject(_ fault: M365SandboxFault) {
        armed.withLockedValue { $0.append(fault) }
    }

    func clear() {
        armed.withLockedValue { $0.removeAll() }
    }

    var pending: [M365SandboxFault] { armed.withLockedValue { $0 } }

    /// Takes one strike of the first fault matching, if any.
    func take(endpoint: M365SandboxFault.Endpoint, stage: M365SandboxFault.Stage, mailbox: String?) -> M365SandboxFault? {
        armed.withLockedValue { faults in
            guard let index = faults.firstIndex(where: { fault in
                fault.endpoint == endpoint && (endpoint == .graph || fault.at == stage)
                    && (fault.mailbox == nil || fault.mailbox?.caseInsensitiveCompare(mailbox ?? "") == .orderedSame)
            }) else { return nil }
            let fault = faults[index]
            faults[index].count -= 1
            if faults[index].count <= 0 { faults.remove(at: index) }
            return fault
        }
    }
}
