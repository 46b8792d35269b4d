import Foundation
import M365Delivery
import NIOCore
import RelayCore
import RelayServer
import RelayStorage

/// Step Test message (`--send-test ADDRESS`): one real message through the
/// route a client of the configuration uses, by the transport `serve` uses,
/// with Microsoft's reply and ids.
extension RelayDoctorRun {
    mutating func testMessageRows() async -> [RelayDoctorRow] {
        let step = RelayDoctorStep.testMessage
        guard let recipient = options.sendTest else {
            return [RelayDoctorRow(step: step, action: "Test message", verification: "not requested", result: .info,
                                   hint: "Run with --send-test ADDRESS to send one real message through the route")]
        }
        let routeName = options.route ?? configuration.clients.first?.route
        guard let routeName, let route = configuration.route(named: routeName) else {
            return [RelayDoctorRow(step: step, action: "Test message to \(recipient)", verification: "no route named \(routeName ?? "-")", result: .fail,
                                   hint: "Give --route with the name of a route in the configuration")]
        }
        let action = "Test message to \(recipient) through route \(route.name) (\(route.mode.rawValue))"
        if let failed = incompleteRoutes[route.name] ?? authenticationFailures[route.name] {
            return [skipped(step, action, because: failed)]
        }
        for (endpoint, _) in route.doctorEndpoints {
            if let failed = unreachable[endpoint] { return [skipped(step, action, because: failed)] }
        }
        if route.mode == .sandbox {
            return [RelayDoctorRow(step: step, action: action, verification: "a sandbox route delivers to the built-in sandbox, not to Microsoft", result: .skip,
                                   hint: "Use --route with a route to the tenant")]
        }
        let client = configuration.doctorClients(of: route).first
        guard let sender = client?.rewriteSender ?? configuration.doctorMailbox(of: route)
            ?? configuration.doctorSenderDomain(of: route).map({ "postmaster@\($0)" }) else {
            return [RelayDoctorRow(step: step, action: action, verification: "no sender address known for the route", result: .fail,
                                   hint: "Set the route's mailbox (or a client's rewrite_sender) to the address the test should come from")]
        }
        var single = configuration
        single.routes = [route]
        let transports: RelayRouteTransports
        do {
            transports = try RelayRouteTransports.make(configuration: single, group: group, logger: logger)
        } catch {
            return [RelayDoctorRow(step: step, action: action, verification: "\(error)", result: .fail, hint: "Fix the route's credentials or TLS files")]
        }
        guard let transport = transports.transports[route.name] else {
            await transports.shutdown()
            return [RelayDoctorRow(step: step, action: action, verification: "no transport for the route", result: .fail, hint: "")]
        }
        let now = Date()
        var generator = SystemRandomNumberGenerator()
        let id = RelayQueueID.make(millisecondsSinceEpoch: UInt64(now.timeIntervalSince1970 * 1000), using: &generator)
        let messageID = "<doctor.\(id.rawValue)@\(configuration.server.hostname)>"
        let content = Self.testMessage(from: sender, to: recipient, messageID: messageID, route: route.name, hostname: configuration.server.hostname, date: now)
        let envelope = RelayEnvelope(
            sender: sender, recipients: [recipient], clientName: client?.name ?? "doctor", clientAddress: "127.0.0.1",
            heloName: configuration.server.hostname, route: route.name, messageID: messageID)
        let message = RelayQueuedMessage(
            id: id, envelope: envelope, recipients: [RelayRecipient(address: recipient)], state: .queued,
            size: content.utf8.count, receivedAt: now, nextAttemptAt: now, attempts: 0, lastError: nil)
        // Signed as the delivery service signs, so the test proves DKIM alignment too.
        var reader: any RelayContentReader = InlineContentReader(ByteBuffer(string: content))
        var signature = ""
        do {
            if let signer = try RelayDKIMKeys.signer(for: configuration.dkim, logger: logger) {
                reader = try signer.signing(reader, of: message, open: { InlineContentReader(ByteBuffer(string: content)) }, now: now)
                let keys = signer.signers(forDomain: RelayDKIMSigner.domain(of: sender) ?? "")
                if !keys.isEmpty {
                    signature = "; DKIM-signed " + keys.map { "d=\($0.domain) s=\($0.selector)" }.joined(separator: ", ")
                }
            }
        } catch {
            await transports.shutdown()
            return [RelayDoctorRow(step: step, action: action, verification: "\(error)", result: .fail, hint: "Fix the dkim entry's private_key_file")]
        }
        let outcome = await transport.deliver(message, recipients: [recipient], content: reader)
        await transport.shutdown()
        await transports.shutdown()

        // The SMTP 250 usually carries the id already; say it once.
        let upstream = outcome.upstreamID.flatMap { outcome.summary.contains($0) ? nil : "id \($0)" }
        let ids = [upstream, "Message-ID \(messageID)"].compactMap { $0 }.joined(separator: "; ")
        let delivered = outcome.recipients.allSatisfy { $0.status == .delivered }
        if delivered {
            return [RelayDoctorRow(step: step, action: action, verification: "from \(sender): \(outcome.summary); \(ids)\(signature)", result: .pass)]
        }
        var hint = "Check the message in Microsoft's message trace by its Message-ID"
        if let reply = outcome.reply {
            let classification = M365ReplyClassification.classify(reply, on: M365Transport(route.mode), canRefreshToken: false)
            hint = classification.hint
        }
        return [RelayDoctorRow(step: step, action: action, verification: "from \(sender): \(outcome.summary); \(ids)\(signature)", result: .fail, hint: hint)]
    }

    /// A small, standards-conforming text message that says where it came from.
    static func testMessage(from sender: String, to recipient: String, messageID: String, route: String, hostname: String, date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return [
            "From: <\(sender)>",
            "To: <\(recipient)>",
            "Subject: m365-relay doctor test message",
            "Date: \(formatter.string(from: date))",
            "Message-ID: \(messageID)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            "This message was sent by `m365-relay doctor --send-test` on \(hostname)",
            "through the route \(route), to prove that mail reaches Microsoft 365.",
            "",
        ].joined(separator: "\r\n")
    }
}
