import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RelayCore
import RelayStorage
import SMTPCore

/// Delivers through Microsoft Graph (route mode `graph`): `sendMail` with the
/// MIME message, or, over the request limit, a draft with upload sessions.
///
/// Graph takes recipients from the headers, so envelope recipients that no
/// `To`, `Cc` or `Bcc` names are added in `Bcc:`. Every reply's
/// `request-id` goes in the outcome for Microsoft's message trace.
/// - SeeAlso: M365.md, Graph sendMail with MIME; Quotas (Graph)
public final class GraphTransport: RelayTransport {
    /// What to do with a message whose base64 is over the request limit.
    public enum LargeMessages: String, Sendable, Hashable {
        /// A draft, attachments through upload sessions, then `send`.
        case uploadSession = "upload-session"
        /// Answer `413 ErrorMessageSizeExceeded` without contacting Graph, so
        /// that the route's fallback (an SMTP route) takes the message.
        case fallback
    }

    public struct Settings: Sendable {
        /// `https://graph.microsoft.com`, a national cloud's host, or the sandbox's base URL.
        public var graphURL: String
        /// The mailbox every message is sent as; nil: the envelope sender.
        public var mailbox: String?
        /// The mailbox that sends messages with the null sender (delivery status notifications).
        public var bounceMailbox: String?
        /// The token scope; nil: `graphURL + "/.default"`.
        public var scope: String?
        /// Largest request body Graph takes: 4 MB (M365.md, Quotas).
        public var requestLimit = 4_194_304
        public var largeMessages: LargeMessages = .uploadSession
        /// One Graph request.
        public var requestTimeout: TimeAmount = .seconds(120)
        /// Upload session chunks: a multiple of 320 KiB, at most 4 MB (Graph's rule).
        public var uploadChunkSize = 327_680 * 12
        /// The header section is read whole to find the recipients; past this it is malformed.
        public var maximumHeaderSection = 1024 * 1024

        public init(graphURL: String = "https://graph.microsoft.com", mailbox: String?, bounceMailbox: String? = nil, scope: String? = nil) {
            self.graphURL = graphURL
            self.mailbox = mailbox
            self.bounceMailbox = bounceMailbox
            self.scope = scope
        }

        var base: String {
            var url = graphURL
            while url.hasSuffix("/") { url.removeLast() }
            return url
        }

        public var effectiveScope: String { scope ?? base + "/.default" }
    }

    private let settings: Settings
    private let tokens: M365TokenProvider
    private let client: HTTPClient
    private let logger: Logger

    public init(settings: Settings, tokens: M365TokenProvider, httpClient: HTTPClient, logger: Logger) {
        self.settings = settings
        self.tokens = tokens
        self.client = httpClient
        self.logger = logger
    }

    public func shutdown() async {}

    // MARK: Status mapping

    /// A failed Graph reply's meaning for each recipient: `4xx` permanent,
    /// except `401` (token), `408` (timeout), `429` (throttled) and `413`
    /// (size: another route may take it), which are temporary; `5xx` temporary.
    public static func recipientStatus(forHTTPStatus status: Int) -> RelayTransportOutcome.Status {
        switch status {
        case 200..<300: .delivered
        case 401, 408, 413, 429: .temporaryFailure
        case 400..<500: .permanentFailure
        default: .temporaryFailure
        }
    }

    /// `{"error":{"code","message"}}` and `Retry-After` (seconds or an HTTP date).
    public static func response(status: Int, headers: HTTPHeaders, body: ByteBuffer, now: Date = Date()) -> M365GraphResponse {
        var code: String?
        var message = ""
        if let json = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
           let error = json["error"] as? [String: Any] {
            code = error["code"] as? String
            message = error["message"] as? String ?? ""
        }
        var retryAfter: TimeInterval?
        if let value = headers.first(name: "Retry-After")?.trimmingCharacters(in: .whitespaces) {
            if let seconds = Double(value) {
                retryAfter = max(0, seconds)
            } else {
                let formatter = DateFormatter()
                formatter.locale = Locale(identifier: "en_US_POSIX")
                formatter.timeZone = TimeZone(identifier: "GMT")
                formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
                if let date = formatter.date(from: value) { retryAfter = max(0, date.timeIntervalSince(now)) }
            }
        }
        return M365GraphResponse(status: status, retryAfter: retryAfter, errorCode: code, message: message)
    }

    // MARK: Delivery

    public func deliver(_ message: RelayQueuedMessage, recipients: [String], content: any RelayContentReader) async -> RelayTransportOutcome {
        let sender = message.envelope.sender
        guard let mailbox = settings.mailbox ?? (sender.isEmpty ? settings.bounceMailbox : sender), !mailbox.isEmpty else {
            return .all(recipients, .temporaryFailure, "No mailbox to send a message with the null sender as: set the route's bounce mailbox")
        }
        var invalid: [RelayTransportOutcome.Recipient] = []
        var valid: [String] = []
        for address in recipients {
            if (try? SMTPMailbox(parsing: address)) != nil {
                valid.append(address)
            } else {
                invalid.append(.init(address: address, status: .permanentFailure, reply: "553 5.1.3 Invalid recipient address"))
            }
        }
        guard !valid.isEmpty else {
            return RelayTransportOutcome(recipients: invalid, summary: invalid.first?.reply ?? "no recipients", sendingMailbox: mailbox, submitted: false)
        }
        var attempt = GraphAttempt(mailbox: mailbox, recipients: valid, settled: invalid)

        // The header section first: it decides the Bcc and, with the size, the path.
        var prefix: [UInt8] = []
        do {
            while prefix.count < settings.maximumHeaderSection, !Self.containsHeaderEnd(prefix), var chunk = try content.read(maxLength: 64 * 1024) {
                prefix += chunk.readBytes(length: chunk.readableBytes) ?? []
            }
        } catch {
            return attempt.all(.temporaryFailure, "Could not read the queued message: \(error)", reply: nil)
        }
        let headers = RelayHeaderSection.parse(prefix)
        if !headers.isComplete, prefix.count >= settings.maximumHeaderSection {
            // A Bcc added inside an unfinished header section would cut it in two.
            return attempt.all(.permanentFailure, "554 5.6.0 The header section is larger than \(settings.maximumHeaderSection) octets", reply: nil)
        }
        let missing = RelayHeaderRecipients.missing(envelope: valid, headers: headers)
        let extra = RelayHeaderRecipients.extra(envelope: valid, headers: headers)
        if !extra.isEmpty {
            // Graph will send to them too; with MIME there is no way to say otherwise.
            logger.notice("Header recipients that are not envelope recipients will receive the message through Graph", metadata: ["count": "\(extra.count)", "queue_id": "\(message.id)"])
        }
        let header = RelayHeaderRecipients.adding(bcc: missing, to: prefix, headers: headers)
        let rawSize = header.count + max(0, message.size - headers.length)
        let encodedSize = GraphBase64Encoder.encodedLength(rawSize)

        if encodedSize > settings.requestLimit {
            switch settings.largeMessages {
            case .fallback:
                let response = M365GraphResponse(status: 413, errorCode: "ErrorMessageSizeExceeded", message: "The message needs \(encodedSize) octets of base64, over the route's request limit of \(settings.requestLimit)")
                return attempt.all(.temporaryFailure, "413 ErrorMessageSizeExceeded: \(response.message); not sent, for the route's fallback", reply: .graph(response))
            case .uploadSession:
                var whole = prefix
                do {
                    while var chunk = try content.read(maxLength: 1024 * 1024) {
                        whole += chunk.readBytes(length: chunk.readableBytes) ?? []
                    }
                } catch {
                    return attempt.all(.temporaryFailure, "Could not read the queued message: \(error)", reply: nil)
                }
                return await sendWithUploadSession(whole, missing: missing, attempt: &attempt)
            }
        }

        var body = ByteBuffer()
        body.reserveCapacity(encodedSize)
        var encoder = GraphBase64Encoder()
        encoder.append(header, into: &body)
        encoder.append(prefix[min(headers.length, prefix.count)...], into: &body)
        prefix = []
        do {
            while let chunk = try content.read(maxLength: 48 * 1024) {
                encoder.append(chunk.readableBytesView, into: &body)
            }
        } catch {
            return attempt.all(.temporaryFailure, "Could not read the queued message: \(error)", reply: nil)
        }
        encoder.finish(into: &body)

        let url = "\(settings.base)/v1.0/users/\(Self.pathSegment(mailbox))/sendMail"
        let result: GraphHTTPResponse
        do {
            result = try await call(.POST, url, body: body, contentType: "text/plain", attempt: &attempt)
        } catch {
            return attempt.failed(error)
        }
        if result.status == 202 {
            return attempt.delivered()
        }
        return attempt.refused(result)
    }

    // MARK: Upload session

    private func sendWithUploadSession(_ bytes: [UInt8], missing: [String], attempt: inout GraphAttempt) async -> RelayTransportOutcome {
        let parsed = RelayMIMEParser.parse(bytes)
        let draft = GraphDraftMessage(message: parsed, extraBcc: missing, requestLimit: settings.requestLimit)
        let user = "\(settings.base)/v1.0/users/\(Self.pathSegment(attempt.mailbox))"

        let created: GraphHTTPResponse
        do {
            created = try await call(.POST, "\(user)/messages", body: ByteBuffer(data: draft.json), contentType: "application/json", attempt: &attempt)
        } catch {
            return attempt.failed(error)
        }
        guard created.status == 201 || created.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(buffer: created.body)) as? [String: Any],
              let id = json["id"] as? String
        else {
            return attempt.refused(created)
        }
        attempt.draftID = id
        let messageURL = "\(user)/messages/\(Self.pathSegment(id))"

        do {
            for attachment in draft.remaining {
                if attachment.bytes.count <= GraphDraftMessage.singleRequestAttachmentLimit,
                   attachment.encodedSize + 256 <= settings.requestLimit {
                    let data = try JSONSerialization.data(withJSONObject: attachment.fileAttachment)
                    let added = try await call(.POST, "\(messageURL)/attachments", body: ByteBuffer(data: data), contentType: "application/json", attempt: &attempt)
                    guard added.status == 201 || added.status == 200 else { return await abandon(messageURL, attempt.refused(added), attempt: &attempt) }
                } else if let refusal = try await upload(attachment, messageURL: messageURL, attempt: &attempt) {
                    return await abandon(messageURL, refusal, attempt: &attempt)
                }
            }
            let sent = try await call(.POST, "\(messageURL)/send", body: ByteBuffer(), contentType: nil, attempt: &attempt)
            guard sent.status == 202 else { return await abandon(messageURL, attempt.refused(sent), attempt: &attempt) }
        } catch let error as GraphCallError {
            return await abandon(messageURL, attempt.failed(error), attempt: &attempt)
        } catch {
            return await abandon(messageURL, attempt.all(.temporaryFailure, "Could not encode an attachment: \(error)", reply: nil), attempt: &attempt)
        }
        return attempt.delivered()
    }

    /// One attachment through an upload session; nil when it arrived whole, else the failed outcome.
    private func upload(_ attachment: GraphDraftMessage.Attachment, messageURL: String, attempt: inout GraphAttempt) async throws(GraphCallError) -> RelayTransportOutcome? {
        let request = (try? JSONSerialization.data(withJSONObject: attachment.uploadItem)) ?? Data()
        let session = try await call(.POST, "\(messageURL)/attachments/createUploadSession", body: ByteBuffer(data: request), contentType: "application/json", attempt: &attempt)
        guard session.status == 201 || session.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(buffer: session.body)) as? [String: Any],
              let uploadURL = json["uploadUrl"] as? String
        else {
            return attempt.refused(session)
        }
        let total = attachment.bytes.count
        let chunk = max(327_680, settings.uploadChunkSize / 327_680 * 327_680)
        var offset = 0
        while offset < total {
            let end = min(offset + chunk, total)
            // The upload URL is pre-authorised: an Authorization header is refused by Graph.
            let put = try await call(
                .PUT, uploadURL, body: ByteBuffer(bytes: attachment.bytes[offset..<end]), contentType: "application/octet-stream",
                extraHeaders: [("Content-Range", "bytes \(offset)-\(end - 1)/\(total)")], authorized: false, attempt: &attempt)
            // 200 with nextExpectedRanges while bytes remain, 201 Created after the last range.
            guard (200..<300).contains(put.status) else {
                return attempt.refused(put)
            }
            offset = end
        }
        return nil
    }

    /// Deletes a draft that will not be sent, so it does not linger in Drafts; best effort.
    private func abandon(_ messageURL: String, _ outcome: RelayTransportOutcome, attempt: inout GraphAttempt) async -> RelayTransportOutcome {
        var scratch = attempt
        _ = try? await call(.DELETE, messageURL, body: nil, contentType: nil, attempt: &scratch)
        return outcome
    }

    // MARK: HTTP

    struct GraphHTTPResponse {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
        var requestID: String? { headers.first(name: "request-id") ?? headers.first(name: "client-request-id") }
    }

    enum GraphCallError: Error {
        case token(M365TokenError)
        case connection(any Error, M365ConnectionFailure?)
    }

    /// One request; a `401` refreshes the token and tries once more (once per attempt).
    private func call(
        _ method: HTTPMethod, _ url: String, body: ByteBuffer?, contentType: String?, extraHeaders: [(String, String)] = [],
        authorized: Bool = true, attempt: inout GraphAttempt
    ) async throws(GraphCallError) -> GraphHTTPResponse {
        while true {
            var request = HTTPClientRequest(url: url)
            request.method = method
            var token: M365AccessToken?
            if authorized {
                do {
                    token = try await tokens.token(scope: settings.effectiveScope)
                } catch {
                    throw .token(error)
                }
                request.headers.add(name: "Authorization", value: "Bearer \(token!.value.unredacted)")
            }
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
            for (name, value) in extraHeaders { request.headers.add(name: name, value: value) }
            if let body {
                request.headers.add(name: "Content-Length", value: "\(body.readableBytes)")
                request.body = .bytes(body)
            }
            attempt.contacted = true
            let response: GraphHTTPResponse
            do {
                let reply = try await client.execute(request, timeout: settings.requestTimeout)
                let collected = try await reply.body.collect(upTo: 4 * 1024 * 1024)
                response = GraphHTTPResponse(status: Int(reply.status.code), headers: reply.headers, body: collected)
            } catch {
                throw .connection(error, M365ConnectionFailure(classifying: error))
            }
            if let id = response.requestID { attempt.requestIDs.append(id) }
            if response.status == 401, let token, !attempt.refreshed {
                attempt.refreshed = true
                await tokens.invalidate(scope: settings.effectiveScope, token: token.value)
                logger.notice("Graph refused the access token; retrying once with a new one", metadata: ["request_id": "\(response.requestID ?? "-")"])
                continue
            }
            return response
        }
    }

    // MARK: Helpers

    static func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        if bytes.first == 10 || (bytes.count >= 2 && bytes[0] == 13 && bytes[1] == 10) { return true }
        var index = 1
        while index < bytes.count {
            if bytes[index] == 10 {
                if bytes[index - 1] == 10 { return true }
                if index >= 3, bytes[index - 1] == 13, bytes[index - 2] == 10, bytes[index - 3] == 13 { return true }
            }
            index += 1
        }
        return false
    }

    /// A mailbox or id as one URL path segment.
    static func pathSegment(_ text: String) -> String {
        var allowed = CharacterSet.m365Unreserved
        allowed.insert(charactersIn: "@!$&'()*+,;=")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// What one Graph attempt has done so far, and the outcomes it can end in.
struct GraphAttempt {
    var mailbox: String
    var recipients: [String]
    /// Recipients decided before any request (invalid addresses).
    var settled: [RelayTransportOutcome.Recipient]
    var requestIDs: [String] = []
    var refreshed = false
    var contacted = false
    var draftID: String?

    init(mailbox: String, recipients: [String], settled: [RelayTransportOutcome.Recipient]) {
        self.mailbox = mailbox
        self.recipients = recipients
        self.settled = settled
    }

    private func outcome(_ status: RelayTransportOutcome.Status, _ reply: String, summary: String, m365: M365Reply?, submitted: Bool) -> RelayTransportOutcome {
        RelayTransportOutcome(
            recipients: settled + recipients.map { .init(address: $0, status: status, reply: reply) },
            summary: summary, reply: m365, sendingMailbox: mailbox, submitted: submitted,
            upstreamID: requestIDs.last, credentialsRefreshed: refreshed)
    }

    func delivered() -> RelayTransportOutcome {
        var text = "202 Accepted"
        if let id = requestIDs.last { text += " request-id=\(id)" }
        if let draftID { text += " draft=\(draftID)" }
        return outcome(.delivered, text, summary: text, m365: .graph(M365GraphResponse(status: 202)), submitted: true)
    }

    func refused(_ response: GraphTransport.GraphHTTPResponse) -> RelayTransportOutcome {
        let graph = GraphTransport.response(status: response.status, headers: response.headers, body: response.body)
        var text = "\(graph)"
        if !graph.message.isEmpty { text += ": \(graph.message)" }
        if let id = response.requestID { text += " request-id=\(id)" }
        return outcome(GraphTransport.recipientStatus(forHTTPStatus: response.status), text, summary: text, m365: .graph(graph), submitted: true)
    }

    func failed(_ error: GraphTransport.GraphCallError) -> RelayTransportOutcome {
        switch error {
        case .token(let error):
            return outcome(.temporaryFailure, error.description, summary: error.description, m365: .tokenRefused(error.failure), submitted: contacted)
        case .connection(let error, let failure):
            let reason = failure.map { "Graph request failed: \($0.rawValue)" } ?? "Graph request failed: \(error)"
            // Refused, unresolved or unverified: the request never left. A timeout or reset: it may have.
            let mayHaveArrived: Bool
            switch failure {
            case .connectionRefused?, .dnsFailure?, .tlsHandshakeFailed?, .untrustedCertificate?: mayHaveArrived = requestIDs.count > 0
            default: mayHaveArrived = true
            }
            return outcome(.temporaryFailure, reason, summary: reason, m365: failure.map(M365Reply.connectionFailed), submitted: mayHaveArrived)
        }
    }

    func all(_ status: RelayTransportOutcome.Status, _ reason: String, reply: M365Reply?) -> RelayTransportOutcome {
        outcome(status, reason, summary: reason, m365: reply, submitted: false)
    }
}
