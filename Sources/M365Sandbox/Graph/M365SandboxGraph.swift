import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat

/// Microsoft Graph's mail sending as a relay uses it: `sendMail` with a MIME
/// message, and drafts with attachments and upload sessions for messages
/// over the request size limit. Throttling, Send As and the submission
/// quotas as in ../shared/M365.md.
final class M365SandboxGraph: Sendable {
    private let tenant: M365SandboxTenant
    private let configuration: M365SandboxConfiguration
    private let logger: Logger
    private let throttle: NIOLockedValueBox<M365SandboxGraphThrottle>
    private let drafts = M365SandboxDrafts()

    init(tenant: M365SandboxTenant, logger: Logger) {
        self.tenant = tenant
        configuration = tenant.configuration
        self.logger = logger
        throttle = NIOLockedValueBox(M365SandboxGraphThrottle(
            concurrency: configuration.graphConcurrency, requestsPerWindow: configuration.graphRequestsPer10Minutes,
            typicalRequestSeconds: Int(configuration.graphLatency.rounded(.up))))
    }

    /// An authenticated, admitted request for a mailbox.
    struct Caller: Sendable {
        var mailbox: String
        var app: String?
        var requestID: String
    }

    func register(on router: Router<M365SandboxRequestContext>, baseURL: @escaping @Sendable () -> String) {
        router.post("v1.0/users/:user/sendMail") { [self] request, context in
            try await authorized(request, context) { caller in try await sendMail(request, caller) }
        }
        router.post("v1.0/users/:user/messages") { [self] request, context in
            try await authorized(request, context) { caller in try await createDraft(request, caller) }
        }
        router.post("v1.0/users/:user/messages/:id/attachments") { [self] request, context in
            try await authorized(request, context) { caller in try await addAttachment(request, caller, draftID: context.parameters.get("id") ?? "") }
        }
        router.post("v1.0/users/:user/messages/:id/attachments/createUploadSession") { [self] request, context in
            try await authorized(request, context) { caller in
                try await createUploadSession(request, caller, draftID: context.parameters.get("id") ?? "", baseURL: baseURL())
            }
        }
        router.post("v1.0/users/:user/messages/:id/send") { [self] request, context in
            try await authorized(request, context) { caller in await sendDraft(caller, draftID: context.parameters.get("id") ?? "") }
        }
        // The upload URL carries its own key: no Authorization header.
        router.put("upload/:key") { [self] request, context in
            try await upload(request, key: context.parameters.get("key") ?? "", baseURL: baseURL())
        }
    }

    // MARK: Authentication, throttling, faults

    private func authorized(_ request: Request, _ context: M365SandboxRequestContext, _ handler: (Caller) async throws -> Response) async throws -> Response {
        let user = context.parameters.get("user")?.removingPercentEncoding ?? ""
        let authorization = request.headers[.authorization] ?? ""
        guard authorization.lowercased().hasPrefix("bearer "), authorization.count > 7 else {
            await drain(request)
            return M365SandboxHTTP.graphError(status: 401, code: "InvalidAuthenticationToken", message: "Access token is empty.")
        }
        let token = String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        let app: String?
        switch tenant.checkToken(token, mailbox: user, resource: .graph) {
        case .valid(let client, _):
            app = client
        case .expired:
            await drain(request)
            return M365SandboxHTTP.graphError(status: 401, code: "InvalidAuthenticationToken", message: "Access token has expired or is not yet valid.")
        case .wrongAudience:
            await drain(request)
            return M365SandboxHTTP.graphError(status: 401, code: "InvalidAuthenticationToken", message: "Access token validation failure. Invalid audience.")
        case .unknown:
            await drain(request)
            return M365SandboxHTTP.graphError(status: 401, code: "InvalidAuthenticationToken", message: "Access token validation failure.")
        case .mailboxNotAllowed:
            await drain(request)
            return M365SandboxHTTP.graphError(status: 403, code: "ErrorAccessDenied", message: "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.")
        }
        let key = M365SandboxGraphThrottle.key(app: app, mailbox: user)
        switch throttle.withLockedValue({ $0.begin(key, now: configuration.now()) }) {
        case .admitted:
            break
        case .concurrency(let retryAfter):
            tenant.recordThrottleRejection()
            await drain(request)
            return M365SandboxHTTP.graphError(status: 429, code: "MailboxConcurrency", message: "Application is over its MailboxConcurrency limit.", retryAfter: retryAfter)
        case .rate(let retryAfter):
            tenant.recordThrottleRejection()
            await drain(request)
            return M365SandboxHTTP.graphError(status: 429, code: "ApplicationThrottled", message: "Application is over its IncomingBytes limit or request rate for this mailbox.", retryAfter: retryAfter)
        }
        defer { throttle.withLockedValue { $0.finished(key) } }
        if configuration.graphLatency > 0 {
            try? await Task.sleep(for: .milliseconds(Int(configuration.graphLatency * 1000)))
        }
        if let fault = tenant.faults.take(endpoint: .graph, stage: .data, mailbox: user) {
            await drain(request)
            return M365SandboxHTTP.graphError(
                status: fault.status ?? 503, code: fault.code ?? "ServiceUnavailable",
                message: fault.message ?? "Injected by the sandbox.", retryAfter: fault.retryAfter)
        }
        return try await handler(Caller(mailbox: user, app: app, requestID: context.requestID))
    }

    private func drain(_ request: Request) async {
        _ = try? await M365SandboxHTTP.collect(request, limit: 0)
    }

    private func body(_ request: Request) async throws -> ByteBuffer? {
        try await M365SandboxHTTP.collect(request, limit: configuration.graphRequestLimit)
    }

    private var tooLarge: Response {
        M365SandboxHTTP.graphError(status: 413, code: "ErrorMessageSizeExceeded", message: "The message exceeds the maximum supported size.")
    }

    // MARK: sendMail

    private func sendMail(_ request: Request, _ caller: Caller) async throws -> Response {
        guard let body = try await body(request) else { return tooLarge }
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        if contentType.hasPrefix("application/json") {
            // sendMail with a JSON message: `{"message": {...}, "saveToSentItems": true}`.
            struct SendMail: Decodable { var message: M365SandboxGraphMessage }
            guard let send = try? JSONDecoder().decode(SendMail.self, from: body) else {
                return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Cannot read the request body.")
            }
            if let name = send.message.invalidHeaderName { return invalidHeader(name) }
            var attachments: [M365SandboxDraft.Attachment] = []
            for attachment in send.message.attachments ?? [] {
                guard let decoded = Self.fileAttachment(attachment) else {
                    return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Invalid attachment: contentBytes must be base64.")
                }
                attachments.append(decoded)
            }
            let draft = M365SandboxDraft(id: Self.newID(), mailbox: caller.mailbox, message: send.message, attachments: attachments, createdAt: configuration.now())
            return await submit(draft, caller)
        }
        // The MIME message, base64 (Graph wants `text/plain`).
        let text = String(buffer: body).filter { !$0.isWhitespace }
        guard !text.isEmpty, let mime = Data(base64Encoded: text) else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorMimeContentInvalidBase64String", message: "Invalid base64 string for MIME content.")
        }
        let headers = M365SandboxHeaders(bytes: mime.prefix(65536))
        let from = headers.fromAddress ?? caller.mailbox
        guard configuration.allowedSenders(for: caller.mailbox).contains(from.lowercased()) else {
            return sendAsDenied()
        }
        let recipients = headers.recipientAddresses
        guard !recipients.isEmpty else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRecipients", message: "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
        }
        if let refusal = await quotaRefusal(caller.mailbox, recipients: recipients.count) { return refusal }
        let messageID = headers.value("Message-ID") ?? "<\(Self.newID())@\(configuration.hostname)>"
        return store(M365SandboxMIME.removingBcc(from: mime), caller: caller, sender: from, recipients: recipients, messageID: messageID)
    }

    private func sendAsDenied() -> Response {
        M365SandboxHTTP.graphError(status: 403, code: "ErrorSendAsDenied", message: "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.")
    }

    private func invalidHeader(_ name: String) -> Response {
        M365SandboxHTTP.graphError(status: 400, code: "InvalidInternetMessageHeader", message: "The internet message header name '\(name)' should start with 'x-' or 'X-'.")
    }

    /// The quotas shared with SMTP AUTH; nil when the message may go (perhaps after a delay).
    private func quotaRefusal(_ mailbox: String, recipients: Int) async -> Response? {
        switch await tenant.submit(mailbox: mailbox, recipients: recipients) {
        case .accepted:
            return nil
        case .rateExceeded(let retryAfter):
            return M365SandboxHTTP.graphError(status: 429, code: "ApplicationThrottled", message: "Message submission rate exceeded: \(configuration.messagesPerMinute) messages per minute for this mailbox.", retryAfter: retryAfter)
        case .recipientsExceeded:
            return M365SandboxHTTP.graphError(status: 403, code: "ErrorSubmissionQuotaExceeded", message: "Cannot submit message. SubmissionQuotaExceededException: Message submission quota exceeded.")
        }
    }

    private func store(_ content: Data, caller: Caller, sender: String, recipients: [String], messageID: String) -> Response {
        let now = configuration.now()
        let record = M365SandboxMessage(
            id: tenant.store.nextID(), mailbox: caller.mailbox, sender: sender, recipients: recipients, messageID: messageID,
            size: content.count, receivedAt: now, tlsVersion: "TLSv1.2", connection: nil,
            via: "graph", connectorName: nil, requestID: caller.requestID, acceptedAt: now)
        do {
            try tenant.store.store(content: content, record: record)
        } catch {
            logger.error("Sandbox could not store a Graph message", metadata: ["error": "\(error)"])
            return M365SandboxHTTP.graphError(status: 503, code: "ServiceUnavailable", message: "The service is temporarily unavailable.", retryAfter: 5)
        }
        return M365SandboxHTTP.empty(202)
    }

    // MARK: Drafts

    private func createDraft(_ request: Request, _ caller: Caller) async throws -> Response {
        guard let body = try await body(request) else { return tooLarge }
        let message: M365SandboxGraphMessage
        do {
            message = try JSONDecoder().decode(M365SandboxGraphMessage.self, from: body)
        } catch {
            return M365SandboxHTTP.graphError(status: 400, code: "RequestBodyRead", message: "Cannot read the message: \(error)")
        }
        if let name = message.invalidHeaderName { return invalidHeader(name) }
        var attachments: [M365SandboxDraft.Attachment] = []
        for attachment in message.attachments ?? [] {
            guard let decoded = Self.fileAttachment(attachment) else {
                return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Invalid attachment: contentBytes must be base64.")
            }
            attachments.append(decoded)
        }
        var stored = message
        stored.attachments = nil
        let draft = M365SandboxDraft(id: Self.newID(), mailbox: caller.mailbox, message: stored, attachments: attachments, createdAt: configuration.now())
        drafts.create(draft)
        return M365SandboxHTTP.json(201, [
            "id": draft.id, "subject": message.subject ?? "", "isDraft": true, "hasAttachments": !attachments.isEmpty,
            "createdDateTime": ISO8601DateFormatter().string(from: draft.createdAt),
        ])
    }

    private func addAttachment(_ request: Request, _ caller: Caller, draftID: String) async throws -> Response {
        guard let body = try await body(request) else { return tooLarge }
        guard drafts.draft(draftID, mailbox: caller.mailbox) != nil else { return notFound() }
        guard let attachment = try? JSONDecoder().decode(M365SandboxGraphAttachment.self, from: body), let decoded = Self.fileAttachment(attachment) else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Expected a #microsoft.graph.fileAttachment with base64 contentBytes.")
        }
        guard drafts.attach(decoded, to: draftID) else { return notFound() }
        return M365SandboxHTTP.json(201, [
            "@odata.type": "#microsoft.graph.fileAttachment", "id": decoded.id, "name": decoded.name,
            "contentType": decoded.contentType, "size": decoded.bytes.count, "isInline": decoded.isInline,
        ])
    }

    private func createUploadSession(_ request: Request, _ caller: Caller, draftID: String, baseURL: String) async throws -> Response {
        guard let body = try await body(request) else { return tooLarge }
        guard drafts.draft(draftID, mailbox: caller.mailbox) != nil else { return notFound() }
        guard let item = try? JSONDecoder().decode(M365SandboxUploadSessionRequest.self, from: body).AttachmentItem else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Expected {\"AttachmentItem\": {\"attachmentType\": \"file\", \"name\": ..., \"size\": ...}}.")
        }
        guard item.attachmentType == nil || item.attachmentType?.lowercased() == "file" else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "Only file attachments can be uploaded.")
        }
        guard item.size > 0, item.size <= configuration.uploadSessionMaxSize else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorAttachmentSizeLimitExceeded", message: "The attachment size must be between 1 byte and \(configuration.uploadSessionMaxSize) bytes.")
        }
        let key = M365SandboxIdentityPlatform.randomToken()
        let expires = configuration.now().addingTimeInterval(configuration.uploadSessionLifetime)
        drafts.openUpload(M365SandboxUploadSession(
            key: key, draftID: draftID, mailbox: caller.mailbox, name: item.name ?? "attachment", contentType: item.contentType ?? "application/octet-stream",
            isInline: item.isInline ?? false, contentId: item.contentId, size: item.size, received: Data(), expires: expires))
        return M365SandboxHTTP.json(201, [
            "@odata.context": "\(baseURL)/v1.0/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": "\(baseURL)/upload/\(key)",
            "expirationDateTime": ISO8601DateFormatter().string(from: expires),
            "nextExpectedRanges": ["0-"],
        ])
    }

    /// One range of an upload session: `Content-Range: bytes a-b/total`, in order, at most the request limit.
    private func upload(_ request: Request, key: String, baseURL: String) async throws -> Response {
        guard let body = try await body(request) else { return tooLarge }
        guard let range = Self.contentRange(request.headers[M365SandboxHTTP.contentRangeField]) else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: "A Content-Range header `bytes a-b/total` is required.")
        }
        enum Step { case missing, invalid(String), outOfOrder(Int), more(Int, Date), complete(M365SandboxUploadSession) }
        let step: Step = drafts.withUpload(key) { session in
            guard let current = session, current.expires > configuration.now() else { session = nil; return .missing }
            guard range.total == current.size else { return .invalid("The total size \(range.total) does not match the session's \(current.size).") }
            guard range.last - range.first + 1 == body.readableBytes else { return .invalid("The range does not match the body length \(body.readableBytes).") }
            guard range.first == current.received.count else { return .outOfOrder(current.received.count) }
            session!.received.append(contentsOf: body.readableBytesView)
            if session!.received.count == current.size {
                let finished = session!
                session = nil
                return .complete(finished)
            }
            return .more(session!.received.count, current.expires)
        }
        switch step {
        case .missing:
            return M365SandboxHTTP.graphError(status: 404, code: "ErrorItemNotFound", message: "The upload session does not exist or has expired.")
        case .invalid(let why):
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRequest", message: why)
        case .outOfOrder(let expected):
            return M365SandboxHTTP.graphError(status: 416, code: "ErrorInvalidRange", message: "The range does not start at the next expected byte \(expected).")
        case .more(let next, let expires):
            return M365SandboxHTTP.json(200, ["expirationDateTime": ISO8601DateFormatter().string(from: expires), "nextExpectedRanges": ["\(next)-"]])
        case .complete(let session):
            let attachment = M365SandboxDraft.Attachment(
                id: Self.newID(), name: session.name, contentType: session.contentType, isInline: session.isInline,
                contentId: session.contentId, bytes: session.received)
            guard drafts.attach(attachment, to: session.draftID) else { return notFound() }
            var headers: HTTPFields = [:]
            headers[.location] = "\(baseURL)/v1.0/users/\(session.mailbox)/messages/\(session.draftID)/attachments/\(attachment.id)"
            return M365SandboxHTTP.empty(201, headers: headers)
        }
    }

    private func sendDraft(_ caller: Caller, draftID: String) async -> Response {
        guard let draft = drafts.draft(draftID, mailbox: caller.mailbox) else { return notFound() }
        let response = await submit(draft, caller)
        if response.status.code == 202 { drafts.remove(draftID) }
        return response
    }

    /// Composes a JSON message's MIME and stores it, after Send As and the quotas.
    private func submit(_ draft: M365SandboxDraft, _ caller: Caller) async -> Response {
        let from = draft.message.from?.emailAddress.address ?? caller.mailbox
        guard configuration.allowedSenders(for: caller.mailbox).contains(from.lowercased()) else { return sendAsDenied() }
        let recipients = draft.message.recipientAddresses
        guard !recipients.isEmpty else {
            return M365SandboxHTTP.graphError(status: 400, code: "ErrorInvalidRecipients", message: "At least one recipient is not valid., A message can't be sent because it contains no recipients.")
        }
        if let refusal = await quotaRefusal(caller.mailbox, recipients: recipients.count) { return refusal }
        let messageID = "<\(draft.id)@\(configuration.hostname)>"
        let mime = M365SandboxMIME.compose(draft, from: from, fromName: draft.message.from?.emailAddress.name, messageID: messageID, date: configuration.now())
        return store(mime, caller: caller, sender: from, recipients: recipients, messageID: messageID)
    }

    private func notFound() -> Response {
        M365SandboxHTTP.graphError(status: 404, code: "ErrorItemNotFound", message: "The specified object was not found in the store.")
    }

    // MARK: Helpers

    static func fileAttachment(_ attachment: M365SandboxGraphAttachment) -> M365SandboxDraft.Attachment? {
        guard attachment.odataType == nil || attachment.odataType == "#microsoft.graph.fileAttachment",
              let bytes = Data(base64Encoded: attachment.contentBytes ?? "", options: .ignoreUnknownCharacters) else { return nil }
        return M365SandboxDraft.Attachment(
            id: newID(), name: attachment.name ?? "attachment", contentType: attachment.contentType ?? "application/octet-stream",
            isInline: attachment.isInline ?? false, contentId: attachment.contentId, bytes: bytes)
    }

    /// Graph ids are long opaque base64 strings; these are shorter, URL-safe and unique.
    static func newID() -> String {
        "AAMk" + M365SandboxIdentityPlatform.randomToken().prefix(40)
    }

    /// `bytes 0-4194303/5242880` -> (0, 4194303, 5242880).
    static func contentRange(_ header: String?) -> (first: Int, last: Int, total: Int)? {
        guard let header, header.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = header.dropFirst(6)
        let halves = spec.split(separator: "/")
        guard halves.count == 2, let total = Int(halves[1]) else { return nil }
        let bounds = halves[0].split(separator: "-")
        guard bounds.count == 2, let first = Int(bounds[0]), let last = Int(bounds[1]), first <= last, last < total else { return nil }
        return (first, last, total)
    }
}

extension M365SandboxMIME {
    /// The RFC 5322 message Exchange makes of a Graph message: the body and
    /// each attachment base64; inline attachments beside the body in
    /// multipart/related; `x-` headers kept; no Bcc field.
    /// - SeeAlso: RFC 2045-2047, RFC 2387 (multipart/related), RFC 2183 (Content-Disposition)
    static func compose(_ draft: M365SandboxDraft, from: String, fromName: String?, messageID: String, date: Date = Date()) -> Data {
        let message = draft.message
        var head: [String] = []
        func list(_ recipients: [M365SandboxGraphMessage.Recipient]?) -> String? {
            let items = (recipients ?? []).compactMap { recipient in
                recipient.emailAddress.address.map { mailbox($0, name: recipient.emailAddress.name) }
            }
            return items.isEmpty ? nil : items.joined(separator: ", ")
        }
        head.append("From: \(mailbox(from, name: fromName))")
        if let to = list(message.toRecipients) { head.append("To: \(to)") }
        if let cc = list(message.ccRecipients) { head.append("Cc: \(cc)") }
        if let replyTo = list(message.replyTo) { head.append("Reply-To: \(replyTo)") }
        head.append("Subject: \(encodedWord(message.subject ?? ""))")
        head.append("Date: \(rfc5322Date(date))")
        head.append("Message-ID: \(messageID)")
        for header in message.internetMessageHeaders ?? [] {
            head.append("\(header.name): \(encodedWord(header.value))")
        }
        head.append("MIME-Version: 1.0")

        let isHTML = message.body?.contentType?.lowercased() == "html"
        let bodyPart = part(
            headers: ["Content-Type: \(isHTML ? "text/html" : "text/plain"); charset=\"utf-8\"", "Content-Transfer-Encoding: base64"],
            content: base64Lines(Data((message.body?.content ?? "").utf8)))
        let inline = draft.attachments.filter(\.isInline)
        let attached = draft.attachments.filter { !$0.isInline }
        var main = bodyPart
        if !inline.isEmpty {
            main = multipart("related", parts: [bodyPart] + inline.map(attachmentPart), extra: "; type=\"\(isHTML ? "text/html" : "text/plain")\"")
        }
        if !attached.isEmpty {
            main = multipart("mixed", parts: [main] + attached.map(attachmentPart))
        }
        return Data((head.joined(separator: "\r\n") + "\r\n" + main).utf8)
    }

    /// A part: its header lines, an empty line, the content.
    private static func part(headers: [String], content: String) -> String {
        headers.joined(separator: "\r\n") + "\r\n\r\n" + content + "\r\n"
    }

    private static func multipart(_ subtype: String, parts: [String], extra: String = "") -> String {
        let boundary = "_\(String(UInt64.random(in: .min ... .max), radix: 36))_\(subtype)_sandbox_"
        var text = "Content-Type: multipart/\(subtype); boundary=\"\(boundary)\"\(extra)\r\n\r\n"
        for part in parts { text += "--\(boundary)\r\n" + part }
        text += "--\(boundary)--\r\n"
        return text
    }

    private static func attachmentPart(_ attachment: M365SandboxDraft.Attachment) -> String {
        let name = encodedWord(attachment.name).replacingOccurrences(of: "\"", with: "'")
        var headers = [
            "Content-Type: \(attachment.contentType); name=\"\(name)\"",
            "Content-Disposition: \(attachment.isInline ? "inline" : "attachment"); filename=\"\(name)\"; size=\(attachment.bytes.count)",
            "Content-Transfer-Encoding: base64",
        ]
        if let contentID = attachment.contentId { headers.append("Content-ID: <\(contentID)>") }
        return part(headers: headers, content: base64Lines(attachment.bytes))
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss +0000"
        return formatter.string(from: date)
    }
}
