import Foundation
import M365Sandbox
import NIOHTTP1
import RelayTestSupport
import Testing

// The sandbox's Graph endpoint, seen through AsyncHTTPClient, against
// ../shared/M365.md: sendMail with a MIME message, its errors, throttling
// per app and mailbox, drafts with an upload session for a large
// attachment, and injected faults.

extension SandboxHTTPEndpoint {
    /// `POST /v1.0/users/{user}/sendMail` with the MIME message base64, as the relay sends it.
    func sendMail(_ user: String, mime: String, token: String, clientRequestID: String? = nil) async throws -> Reply {
        var headers = ["Authorization": "Bearer \(token)", "Content-Type": "text/plain"]
        headers["client-request-id"] = clientRequestID
        return try await request(.POST, "/v1.0/users/\(user)/sendMail", headers: headers, body: Data(Data(mime.utf8).base64EncodedString().utf8))
    }

    func graphJSON(_ path: String, token: String, _ object: Any) async throws -> Reply {
        try await request(.POST, path, headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                          body: try JSONSerialization.data(withJSONObject: object))
    }
}

/// A small message from `from` to the given recipients.
func sandboxMIME(from: String, to: String = "carol@fabrikam.com", cc: String? = nil, bcc: String? = nil, subject: String = "Graph test", body: String = "Hello") -> String {
    var text = "From: Sender <\(from)>\r\nTo: \(to)\r\n"
    if let cc { text += "Cc: \(cc)\r\n" }
    if let bcc { text += "Bcc: \(bcc)\r\n" }
    text += "Subject: \(subject)\r\nMessage-ID: <\(UUID().uuidString)@client.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\(body)\r\n"
    return text
}

@Suite("Sandbox Graph endpoint, seen by AsyncHTTPClient")
struct SandboxGraphTests {
    /// `202` with an empty body; stored as sent minus Bcc, every recipient in the record, with the request-id.
    @Test func sendMailIsAcceptedAndStored() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let token = try await endpoint.accessToken(scope: "\(endpoint.base)/.default")
            let mime = sandboxMIME(from: "alice@contoso.com", to: "\"Carol, C.\" <carol@fabrikam.com>, dave@fabrikam.com", cc: "erin@contoso.com", bcc: "hidden@fabrikam.com")
            let reply = try await endpoint.sendMail("alice@contoso.com", mime: mime, token: token, clientRequestID: "client-123")
            #expect(reply.status == 202, "\(reply.text)")
            #expect(reply.body.isEmpty)
            let requestID = try #require(reply.headers["request-id"])
            #expect(UUID(uuidString: requestID) != nil, "\(requestID)")
            #expect(reply.headers["client-request-id"] == "client-123")

            let messages = try endpoint.sandbox.mailStore.messages()
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message.via == "graph")
            #expect(message.requestID == requestID)
            #expect(message.mailbox == "alice@contoso.com")
            #expect(message.sender == "alice@contoso.com")
            #expect(message.recipients == ["carol@fabrikam.com", "dave@fabrikam.com", "erin@contoso.com", "hidden@fabrikam.com"])
            #expect(message.acceptedAt != nil)
            let stored = String(decoding: try endpoint.sandbox.mailStore.content(of: message), as: UTF8.self)
            #expect(!stored.contains("Bcc:") && !stored.contains("hidden@"), "\(stored)")
            #expect(stored == mime.replacingOccurrences(of: "Bcc: hidden@fabrikam.com\r\n", with: ""))
            #expect(endpoint.sandbox.stats.messagesStored == 1)
        }
    }

    /// Each error as Graph answers it: status, `error.code`, and a `request-id` even then.
    @Test func sendMailErrors() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let outlook = try await endpoint.accessToken(scope: SandboxApps.outlookScope)
            let limited = try await endpoint.accessToken(clientID: SandboxApps.limitedClientID, scope: SandboxApps.graphScope)

            // Send As: alice may send as info@, not as ceo@.
            let sendAs = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "info@contoso.com"), token: token)
            #expect(sendAs.status == 202, "\(sendAs.text)")
            let denied = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "ceo@contoso.com"), token: token)
            #expect(denied.status == 403 && denied.errorCode == "ErrorSendAsDenied", "\(denied.status) \(denied.text)")

            let noRecipients = try await endpoint.sendMail("alice@contoso.com", mime: "From: alice@contoso.com\r\nSubject: x\r\n\r\nbody\r\n", token: token)
            #expect(noRecipients.status == 400 && noRecipients.errorCode == "ErrorInvalidRecipients", "\(noRecipients.text)")

            let badBase64 = try await endpoint.request(
                .POST, "/v1.0/users/alice@contoso.com/sendMail", headers: ["Authorization": "Bearer \(token)", "Content-Type": "text/plain"],
                body: Data("not*base64!".utf8))
            #expect(badBase64.status == 400 && badBase64.errorCode == "ErrorMimeContentInvalidBase64String", "\(badBase64.text)")

            // Over the 4 MB request limit (a 3.2 MB message is 4.3 MB of base64).
            let big = sandboxMIME(from: "alice@contoso.com", body: String(repeating: String(repeating: "x", count: 76) + "\r\n", count: 42_000))
            let tooLarge = try await endpoint.sendMail("alice@contoso.com", mime: big, token: token)
            #expect(tooLarge.status == 413 && tooLarge.errorCode == "ErrorMessageSizeExceeded", "\(tooLarge.status) \(tooLarge.text)")

            let wrongAudience = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: outlook)
            #expect(wrongAudience.status == 401 && wrongAudience.errorCode == "InvalidAuthenticationToken", "\(wrongAudience.text)")
            let noToken = try await endpoint.request(.POST, "/v1.0/users/alice@contoso.com/sendMail", headers: ["Content-Type": "text/plain"], body: Data("eA==".utf8))
            #expect(noToken.status == 401 && noToken.errorCode == "InvalidAuthenticationToken")
            let notAllowed = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: limited)
            #expect(notAllowed.status == 403 && notAllowed.errorCode == "ErrorAccessDenied", "\(notAllowed.text)")

            for reply in [denied, noRecipients, badBase64, tooLarge, wrongAudience, noToken, notAllowed] {
                #expect(reply.headers["request-id"].flatMap(UUID.init(uuidString:)) != nil)
            }
            #expect(try endpoint.sandbox.mailStore.messages().count == 1)
        }
    }

    /// An expired Graph token: `401 InvalidAuthenticationToken`, "Access token has expired or is not yet valid."
    @Test func expiredTokenIsRefused() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.tokenLifetime = 1 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            try await Task.sleep(for: .milliseconds(1300))
            let reply = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(reply.status == 401, "\(reply.text)")
            #expect(reply.errorCode == "InvalidAuthenticationToken")
            #expect(((reply.json["error"] as? [String: Any])?["message"] as? String) == "Access token has expired or is not yet valid.")
        }
    }

    /// Five requests at once for one app and mailbox: four run, the fifth is `429` with `Retry-After`.
    @Test func concurrencyOverFourIsThrottled() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.graphLatency = 1.5 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let replies = try await withThrowingTaskGroup(of: SandboxHTTPEndpoint.Reply.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let throttled = replies.filter { $0.status == 429 }
            let accepted = replies.filter { $0.status == 202 }
            #expect(accepted.count == 4, "\(replies.map(\.status))")
            #expect(throttled.count == 2, "\(replies.map(\.status))")
            for reply in throttled {
                #expect(reply.errorCode == "MailboxConcurrency")
                #expect(Int(reply.headers["retry-after"] ?? "") ?? 0 >= 1, "\(reply.headers)")
            }
            #expect(endpoint.sandbox.stats.throttleRejections == 2)
            // Another mailbox has its own four.
            let bob = try await endpoint.sendMail("bob@contoso.com", mime: sandboxMIME(from: "bob@contoso.com"), token: token)
            #expect(bob.status == 202)
        }
    }

    /// The request window: past `graphRequestsPer10Minutes`, `429 ApplicationThrottled` with the seconds until the oldest leaves it.
    @Test func requestWindowIsThrottled() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.graphRequestsPer10Minutes = 2 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            var statuses: [Int] = []
            var last: SandboxHTTPEndpoint.Reply?
            for _ in 0..<3 {
                let reply = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
                statuses.append(reply.status)
                last = reply
            }
            #expect(statuses == [202, 202, 429])
            #expect(last?.errorCode == "ApplicationThrottled")
            // Seconds until the first request leaves the 10-minute window; a loaded machine takes a few.
            #expect((570...600).contains(Int(last?.headers["retry-after"] ?? "") ?? 0), "\(last?.headers ?? [:])")
        }
    }

    /// A draft with a 5 MB attachment through an upload session (4 MB + 1 MB), sent: the stored MIME carries the same bytes.
    @Test func draftWithUploadSessionIsSentWhole() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let user = "/v1.0/users/alice@contoso.com"

            let badHeader = try await endpoint.graphJSON("\(user)/messages", token: token, [
                "subject": "x", "toRecipients": [["emailAddress": ["address": "carol@fabrikam.com"]]],
                "internetMessageHeaders": [["name": "Received", "value": "forged"]],
            ])
            #expect(badHeader.status == 400 && badHeader.errorCode == "InvalidInternetMessageHeader", "\(badHeader.text)")

            let draft = try await endpoint.graphJSON("\(user)/messages", token: token, [
                "subject": "Scan 42",
                "body": ["contentType": "text", "content": "See attached."],
                "from": ["emailAddress": ["address": "alice@contoso.com", "name": "Alice"]],
                "toRecipients": [["emailAddress": ["address": "carol@fabrikam.com", "name": "Carol"]]],
                "bccRecipients": [["emailAddress": ["address": "audit@contoso.com"]]],
                "internetMessageHeaders": [["name": "X-Relay-Queue-ID", "value": "Q42"]],
                "attachments": [[
                    "@odata.type": "#microsoft.graph.fileAttachment", "name": "small.txt", "contentType": "text/plain",
                    "contentBytes": Data("small attachment".utf8).base64EncodedString(),
                ]],
            ])
            #expect(draft.status == 201, "\(draft.text)")
            let id = try #require(draft.json["id"] as? String)

            let size = 5 * 1024 * 1024
            var generator = SystemRandomNumberGenerator()
            let bytes = Data((0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let session = try await endpoint.graphJSON("\(user)/messages/\(id)/attachments/createUploadSession", token: token, [
                "AttachmentItem": ["attachmentType": "file", "name": "scan.pdf", "size": size, "contentType": "application/pdf"],
            ])
            #expect(session.status == 201, "\(session.text)")
            #expect(session.json["nextExpectedRanges"] as? [String] == ["0-"])
            let uploadURL = try #require(session.json["uploadUrl"] as? String)
            #expect(uploadURL.hasPrefix(endpoint.base))

            let chunk = 4 * 1024 * 1024
            // More than 4 MB in one request: 413.
            let oversized = try await endpoint.request(.PUT, uploadURL, headers: ["Content-Range": "bytes 0-\(chunk)/\(size)"], body: bytes.prefix(chunk + 1))
            #expect(oversized.status == 413, "\(oversized.text)")
            // Out of order: 416.
            let outOfOrder = try await endpoint.request(.PUT, uploadURL, headers: ["Content-Range": "bytes \(chunk)-\(size - 1)/\(size)"], body: bytes.suffix(from: chunk))
            #expect(outOfOrder.status == 416, "\(outOfOrder.text)")

            let first = try await endpoint.request(.PUT, uploadURL, headers: ["Content-Range": "bytes 0-\(chunk - 1)/\(size)"], body: bytes.prefix(chunk))
            #expect(first.status == 200, "\(first.text)")
            #expect(first.json["nextExpectedRanges"] as? [String] == ["\(chunk)-"])
            let last = try await endpoint.request(.PUT, uploadURL, headers: ["Content-Range": "bytes \(chunk)-\(size - 1)/\(size)"], body: bytes.suffix(from: chunk))
            #expect(last.status == 201, "\(last.text)")

            let send = try await endpoint.request(.POST, "\(user)/messages/\(id)/send", headers: ["Authorization": "Bearer \(token)"])
            #expect(send.status == 202, "\(send.text)")
            let again = try await endpoint.request(.POST, "\(user)/messages/\(id)/send", headers: ["Authorization": "Bearer \(token)"])
            #expect(again.status == 404, "a sent draft is gone: \(again.text)")

            let message = try #require(try endpoint.sandbox.mailStore.messages().first)
            #expect(message.via == "graph")
            #expect(message.recipients == ["carol@fabrikam.com", "audit@contoso.com"])
            let mime = String(decoding: try endpoint.sandbox.mailStore.content(of: message), as: UTF8.self)
            #expect(mime.contains("X-Relay-Queue-ID: Q42\r\n"))
            #expect(mime.contains("Subject: Scan 42\r\n"))
            #expect(mime.contains("To: Carol <carol@fabrikam.com>\r\n"))
            #expect(!mime.contains("audit@contoso.com"), "Bcc must not show")
            #expect(mime.contains("multipart/mixed"))
            #expect(Self.attachment(named: "scan.pdf", in: mime) == bytes, "the uploaded attachment differs")
            #expect(Self.attachment(named: "small.txt", in: mime) == Data("small attachment".utf8))
        }
    }

    /// The base64 content of the MIME part whose filename is `name`.
    static func attachment(named name: String, in mime: String) -> Data? {
        guard let disposition = mime.range(of: "filename=\"\(name)\"") else { return nil }
        let rest = mime[disposition.upperBound...]
        guard let start = rest.range(of: "\r\n\r\n"), let end = rest[start.upperBound...].range(of: "\r\n--") else { return nil }
        return Data(base64Encoded: String(rest[start.upperBound..<end.lowerBound]), options: .ignoreUnknownCharacters)
    }

    /// A Graph fault armed through `/sandbox/faults`, then through the Swift API: the reply it asks for, once each.
    @Test func injectedGraphFaults() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let armed = try await endpoint.request(.POST, "/sandbox/faults", headers: ["Content-Type": "application/json"],
                                                   body: Data(#"{"endpoint":"graph","status":429,"code":"ApplicationThrottled","retryAfter":7}"#.utf8))
            #expect(armed.status == 201, "\(armed.text)")
            let throttled = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(throttled.status == 429 && throttled.errorCode == "ApplicationThrottled")
            #expect(throttled.headers["retry-after"] == "7")

            try endpoint.sandbox.inject(.graphError(status: 503, code: "ServiceUnavailable", mailbox: "alice@contoso.com"))
            try endpoint.sandbox.inject(.graphError(status: 403, code: "ErrorSendAsDenied", mailbox: "bob@contoso.com"))
            let bob = try await endpoint.sendMail("bob@contoso.com", mime: sandboxMIME(from: "bob@contoso.com"), token: token)
            #expect(bob.status == 403 && bob.errorCode == "ErrorSendAsDenied")
            let unavailable = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(unavailable.status == 503 && unavailable.errorCode == "ServiceUnavailable")
            let fine = try await endpoint.sendMail("alice@contoso.com", mime: sandboxMIME(from: "alice@contoso.com"), token: token)
            #expect(fine.status == 202, "faults strike once: \(fine.text)")

            let stats = try await endpoint.request(.GET, "/sandbox/stats")
            #expect(stats.status == 200)
            #expect(stats.json["messagesStored"] as? Int == 1, "\(stats.text)")
            #expect(stats.json["tokensIssued"] as? Int == 1, "\(stats.text)")
            #expect(stats.json["faultsPending"] as? Int == 0, "\(stats.text)")

            let invalid = try await endpoint.request(.POST, "/sandbox/faults", body: Data(#"{"endpoint":"smtp","reply":"nonsense"}"#.utf8))
            #expect(invalid.status == 400, "\(invalid.text)")
        }
    }
}
