import Foundation
import NIOCore
import SMTPCore
import Testing
@testable import RelayCore

/// M365.md, "Replies to classify", row by row; replies are written as they
/// come off the wire and decoded by the client's own reply decoder.
@Suite("Microsoft 365 reply classification")
struct M365ReplyClassificationTests {
    static let noWait = M365ReplyAction.retry(retryAfter: nil)
    static let slow = M365ReplyAction.slowMailbox(retryAfter: nil)

    /// Decodes one reply as the SMTP client would (CRLF added at the end).
    static func reply(_ wire: String) throws -> SMTPReply {
        var decoder = SMTPReplyDecoder()
        var buffer = ByteBuffer(string: wire + "\r\n")
        return try #require(try decoder.next(&buffer))
    }

    static func classify(_ transport: M365Transport, _ wire: String, canRefreshToken: Bool = true) throws -> M365ReplyClassification {
        M365ReplyClassification.classify(.smtp(try reply(wire)), on: transport, canRefreshToken: canRefreshToken)
    }

    // MARK: - SMTP

    static let smtpRows: [(M365Transport, String, M365ReplyAction)] = [
        // transport, reply, action. The rows of M365.md in order:
        (.smtp, "530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM", .pauseRoute),
        (.smtp, "535 5.7.3 Authentication unsuccessful", .refreshTokenAndRetry),
        (.smtp, "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.", .pauseRoute),
        (.smtp, "550 5.7.60 SMTP; Client does not have permissions to send as this sender", .failMessage),
        (.smtp, "554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied", .failMessage),
        (.smtp, "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception", .failMessage),
        (.smtp, "432 4.3.2 Concurrent connections limit exceeded", slow),
        (.smtp, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", slow),
        (.smtp, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", .pauseMailboxUntilWindowFrees),
        (.connector, "451 4.7.500 Access denied, please try again later", noWait),
        (.connector, "451 4.7.699 Access denied, please try again later", noWait),
        (.connector, "550 5.7.64 TenantAttribution; Relay Access Denied", .pauseRoute),
        (.directSend, "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources", .pauseRoute),
        (.connector, "550 5.7.705 Access denied, tenant has exceeded threshold", .stopTenant),
        (.connector, "550 5.7.708 Access denied, traffic not accepted from this IP", .stopTenant),
        (.connector, "550 5.7.606 Access denied, banned sending IP [192.0.2.10]", .pauseRoute),
        (.connector, "550 5.7.649 Access denied, banned sending IP [192.0.2.10]", .pauseRoute),
        (.smtp, "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2.", .pauseRoute),
        (.smtp, "550 5.7.512 Message must be RFC 5322 section 3.6.2 compliant", .failMessage),
        (.smtp, "550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds", .failMessage),
        (.smtp, "421 4.3.2 Service not available, closing transmission channel", noWait),
        (.smtp, "421 Service not available", noWait),
        (.connector, "451 4.4.0 Primary target IP address responded with: 421 4.4.2 Connection dropped", noWait),
        (.smtp, "441 4.4.1 Connection timed out", noWait),
        (.smtp, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.com not found by SMTP address lookup", .failMessage),

        // From the OAuth and basic-authentication sections.
        (.smtp, "430 4.2.0 STOREDRV; mailbox logon failure", .pauseRoute),
        (.smtp, "501 5.5.127 Client submission failed: Token will expire soon", .refreshTokenAndRetry),
        (.smtp, "550 5.7.30 Basic authentication is not supported for Client Submission", .pauseRoute),
        (.smtp, "504 5.7.4 Unrecognized authentication type", .pauseRoute),
        // Quotas: message size.
        (.smtp, "552 5.3.4 Message size exceeds fixed maximum message size", .tooLargeForRoute),

        // Boundaries and look-alikes.
        (.connector, "550 5.7.605 Access denied", .failMessage),                   // below the banned-IP range
        (.connector, "550 5.7.650 Access denied", .failMessage),                   // above it: just permanent
        (.connector, "451 4.7.499 Try again later", noWait),                       // below the 4.7.500 range: still 4xx
        (.connector, "451 4.7.700 Try again later", noWait),
        (.smtp, "554 5.2.0 STOREDRV.Submission.Exception:StoragePermanentException", .failMessage), // 5.2.0, neither text
        (.smtp, "451 4.3.2 System not accepting network messages", noWait),        // 4.3.2 that is no limit
        (.smtp, "452 4.5.3 Too many recipients", noWait),
        (.smtp, "451 4.3.0 Temporary server error. Please try again later", noWait),
        (.smtp, "500 5.5.2 Syntax error, command unrecognized", .failMessage),
        (.smtp, "550 Requested action not taken", .failMessage),                  // 5xx without an enhanced code
        (.smtp, "450 Requested mail action not taken", noWait),                   // 4xx without one
        (.smtp, "250 2.0.0 OK <a1b2@contoso.com> [Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com]", .delivered),
        (.smtp, "354 Start mail input", noWait),                                  // not a final reply
        // The deciding text on the second line of a multi-line reply.
        (.smtp, "554-5.2.0 STOREDRV.Submission.Exception:\r\n554 5.2.0 SubmissionQuotaExceededException; Failed to process message", .pauseMailboxUntilWindowFrees),
    ]

    @Test(arguments: smtpRows)
    func smtpReply(transport: M365Transport, wire: String, expected: M365ReplyAction) throws {
        let classification = try Self.classify(transport, wire)
        #expect(classification.action == expected)
        #expect(!classification.meaning.isEmpty)
    }

    /// The transport changes the advice, never the decision.
    @Test(arguments: smtpRows)
    func sameDecisionOnEveryTransport(_: M365Transport, wire: String, expected: M365ReplyAction) throws {
        for transport in M365Transport.allCases {
            #expect(try Self.classify(transport, wire).action == expected, "\(transport)")
        }
    }

    // MARK: - Refresh the token once

    @Test(arguments: [
        // reply, action with a token fetched after the failure (or credentials that cannot be refreshed)
        ("535 5.7.3 Authentication unsuccessful", M365ReplyAction.pauseRoute),
        ("501 5.5.127 Client submission failed: Token will expire soon", noWait),
        ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", .pauseRoute),
        ("550 5.7.60 SMTP; Client does not have permissions to send as this sender", .failMessage),
        ("250 2.0.0 OK", .delivered),
    ])
    func smtpAfterTheTokenWasRefreshed(wire: String, expected: M365ReplyAction) throws {
        #expect(try Self.classify(.smtp, wire, canRefreshToken: false).action == expected)
    }

    @Test func graphAfterTheTokenWasRefreshed() {
        let unauthorized = M365Reply.graph(M365GraphResponse(status: 401, errorCode: "InvalidAuthenticationToken"))
        #expect(M365ReplyClassification.classify(unauthorized, on: .graph).action == .refreshTokenAndRetry)
        #expect(M365ReplyClassification.classify(unauthorized, on: .graph, canRefreshToken: false).action == .pauseRoute)
    }

    // MARK: - Graph

    static let graphRows: [(M365GraphResponse, M365ReplyAction)] = [
        (.init(status: 202), .delivered),
        (.init(status: 429, retryAfter: 30, errorCode: "ApplicationThrottled"), .slowMailbox(retryAfter: 30)),
        (.init(status: 429, errorCode: "MailboxConcurrency"), .slowMailbox(retryAfter: nil)),
        (.init(status: 503, retryAfter: 10), .retry(retryAfter: 10)),
        (.init(status: 504), noWait),
        (.init(status: 500, errorCode: "ErrorInternalServerError"), noWait),
        (.init(status: 408), noWait),
        (.init(status: 401, errorCode: "InvalidAuthenticationToken", message: "Access token has expired or is not yet valid."), .refreshTokenAndRetry),
        (.init(status: 403, errorCode: "ErrorAccessDenied", message: "Access is denied. Check credentials and try again."), .pauseRoute),
        (.init(status: 403), .pauseRoute),
        (.init(status: 403, errorCode: "ErrorSendAsDenied", message: "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account."), .failMessage),
        (.init(status: 403, errorCode: "errorsendasdenied"), .failMessage),  // codes compare without case
        (.init(status: 400, errorCode: "ErrorInvalidRecipients", message: "At least one recipient isn't valid."), .failMessage),
        (.init(status: 413), .tooLargeForRoute),
        (.init(status: 400, errorCode: "ErrorMessageSizeExceeded"), .tooLargeForRoute),
        (.init(status: 400, errorCode: "ErrorMimeContentInvalidBase64String"), .failMessage),
        (.init(status: 400, errorCode: "ErrorInvalidRequest"), .failMessage),
        (.init(status: 404, errorCode: "ErrorInvalidUser", message: "The requested user 'nobody@contoso.com' is invalid."), .failMessage),
        (.init(status: 403, errorCode: "ErrorAccessDenied", message: "STOREDRV.Submission.Exception:SubmissionQuotaExceededException"), .pauseMailboxUntilWindowFrees),
        (.init(status: 302), noWait),
    ]

    @Test(arguments: graphRows)
    func graphResponse(_ response: M365GraphResponse, expected: M365ReplyAction) {
        let classification = M365ReplyClassification.classify(.graph(response), on: .graph)
        #expect(classification.action == expected)
        #expect(!classification.meaning.isEmpty)
    }

    // MARK: - No reply

    @Test(arguments: [
        (M365ConnectionFailure.timeout, noWait),
        (.connectionRefused, noWait),
        (.connectionReset, noWait),
        (.dnsFailure, noWait),
        (.tlsHandshakeFailed, noWait),
        (.untrustedCertificate, .pauseRoute),
    ])
    func connectionFailure(_ failure: M365ConnectionFailure, expected: M365ReplyAction) {
        for transport in M365Transport.allCases {
            #expect(M365ReplyClassification.classify(.connectionFailed(failure), on: transport).action == expected)
        }
    }

    // MARK: - Words for the operator

    @Test(arguments: [
        // reply, words the alert must carry
        ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.", "SmtpClientAuthenticationDisabled $false"),
        ("550 5.7.30 Basic authentication is not supported for Client Submission", "OAuth"),
        ("430 4.2.0 STOREDRV; mailbox logon failure", "service principal"),
        ("550 5.7.64 TenantAttribution; Relay Access Denied", "connector"),
        ("550 5.7.68 TenantInboundAttribution; Direct Send not allowed", "RejectDirectSend"),
        ("550 5.7.606 Access denied, banned sending IP [192.0.2.10]", "https://sender.office.com"),
        ("550 5.7.649 Access denied, banned sending IP [192.0.2.10]", "delisting"),
        ("421 4.7.66 TLS 1.0 and 1.1 are not supported.", "TLS 1.2"),
        ("550 5.7.708 Access denied, traffic not accepted from this IP", "resume"),
    ])
    func remedy(wire: String, words: String) throws {
        let classification = try Self.classify(.smtp, wire)
        #expect(classification.alerts)
        #expect(classification.remedy?.contains(words) == true, "\(classification.remedy ?? "no remedy")")
    }

    @Test func graphAccessDeniedNamesThePermission() {
        let classification = M365ReplyClassification.classify(.graph(.init(status: 403, errorCode: "ErrorAccessDenied")), on: .graph)
        #expect(classification.remedy?.contains("Mail.Send") == true)
    }

    /// Every stopped route or tenant says what to do; nothing else raises an alert.
    @Test(arguments: smtpRows)
    func alertsCarryARemedy(transport: M365Transport, wire: String, expected: M365ReplyAction) throws {
        let classification = try Self.classify(transport, wire)
        switch expected {
        case .pauseRoute, .stopTenant:
            #expect(classification.alerts)
            #expect(classification.remedy?.isEmpty == false)
        default:
            #expect(!classification.alerts)
        }
    }

    /// The texts are the relay's own: a reply naming mailboxes does not leak
    /// them into logs or alerts through `meaning` or `remedy`.
    @Test(arguments: [
        "554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient ceo@contoso.com not found by SMTP address lookup",
        "535 5.7.3 Authentication unsuccessful for ceo@contoso.com",
    ])
    func wordsDoNotEchoTheReply(wire: String) throws {
        for canRefreshToken in [true, false] {
            let classification = try Self.classify(.smtp, wire, canRefreshToken: canRefreshToken)
            #expect(!classification.meaning.contains("contoso"))
            #expect(classification.remedy?.contains("contoso") != true)
        }
    }

    @Test(arguments: [
        (RelayConfiguration.RouteMode.smtp, M365Transport.smtp),
        (.sandbox, .smtp),
        (.graph, .graph),
        (.connector, .connector),
        (.directSend, .directSend),
    ])
    func transportOfARouteMode(_ mode: RelayConfiguration.RouteMode, expected: M365Transport) {
        #expect(M365Transport(mode) == expected)
    }
}
