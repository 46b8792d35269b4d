import Foundation
import M365Sandbox
import RelayTestSupport
import Testing

// The sandbox's tenant MX (`contoso-com.mail.protection.outlook.com:25`),
// seen by python smtplib from different loopback addresses, against
// ../shared/M365.md: an inbound connector matched by IP or by the client
// certificate's subject relays anywhere; Direct Send reaches only the
// accepted domains; `550 5.7.64` and `550 5.7.68` otherwise.

/// One MX transaction as python saw it.
struct SandboxMXTransaction: Decodable, Sendable {
    var features: [String: String]
    var mail: SandboxReply
    var recipients: [SandboxReply]
    var data: SandboxReply?
}

/// Connects from `source`, STARTTLS (with a client certificate when given), MAIL, each RCPT, DATA if any was accepted.
let sandboxMXScript = #"""
s = smtplib.SMTP(timeout=60, source_address=(args["source"], 0))
s.connect(HOST, args["mxport"])
s._host = HOST
s.ehlo("relay.test")
context = tls_context()
if args.get("cert"):
    context.load_cert_chain(args["cert"], args["key"])
s.starttls(context=context)
s.ehlo("relay.test")
features = dict(s.esmtp_features)
mail = reply(s.mail(args["from"]))
recipients = [reply(s.rcpt(r)) for r in args["to"]]
sent = None
if any(r["code"] == 250 for r in recipients):
    sent = data(s, ("From: %s\r\nTo: %s\r\nSubject: via MX\r\n\r\nbody\r\n" % (args["from"], ", ".join(args["to"]))).encode())
close(s)
done({"features": features, "mail": mail, "recipients": recipients, "data": sent})
"""#

extension SandboxHTTPEndpoint {
    func mx(from source: String, sender: String = "scanner@contoso.com", to recipients: [String], certificate: SandboxServerCertificate.Files? = nil) async throws -> SandboxMXTransaction {
        var arguments: [String: Any] = ["source": source, "mxport": sandbox.ports.connector ?? 0, "from": sender, "to": recipients]
        if let certificate {
            arguments["cert"] = certificate.certificate
            arguments["key"] = certificate.privateKey
        }
        return try await python(sandboxMXScript, arguments, as: SandboxMXTransaction.self)
    }
}

@Suite("Sandbox tenant MX (connectors, Direct Send), seen by python smtplib")
struct SandboxConnectorTests {
    static func configure(_ configuration: inout M365SandboxConfiguration) {
        configuration.mailboxes = [.init(address: "alice@contoso.com")]
        configuration.connectors = [
            .init(name: "office-printers", senderNetworks: ["127.0.0.2/32"]),
            .init(name: "relay-by-certificate", certificateSubject: "relay.contoso.com"),
        ]
    }

    /// From a connector's network: any recipient; no AUTH offered; stored `via: connector` with its name.
    @Test func connectorMatchedByIPRelaysAnywhere() async throws {
        try await SandboxHTTPEndpoint.with(Self.configure) { endpoint in
            let result = try await endpoint.mx(from: "127.0.0.2", to: ["carol@fabrikam.com", "alice@contoso.com"])
            #expect(result.features["auth"] == nil, "\(result.features)")
            #expect(result.recipients.map(\.code) == [250, 250], "\(result.recipients)")
            #expect(result.data?.code == 250, "\(String(describing: result.data))")
            let message = try #require(try endpoint.sandbox.mailStore.messages().first)
            #expect(message.via == "connector")
            #expect(message.connectorName == "office-printers")
            #expect(message.connection?.hasPrefix("127.0.0.2:") == true)
        }
    }

    /// From elsewhere, without a certificate: external recipients `550 5.7.64`; internal ones are Direct Send.
    @Test func unmatchedClientIsDirectSend() async throws {
        try await SandboxHTTPEndpoint.with(Self.configure) { endpoint in
            let result = try await endpoint.mx(from: "127.0.0.3", to: ["carol@fabrikam.com", "alice@contoso.com"])
            #expect(result.recipients.first?.status == "550 5.7.64", "\(result.recipients)")
            #expect(result.recipients.first?.text == "5.7.64 TenantAttribution; Relay Access Denied")
            #expect(result.recipients.last?.code == 250, "\(result.recipients)")
            #expect(result.data?.code == 250)
            let message = try #require(try endpoint.sandbox.mailStore.messages().first)
            #expect(message.via == "direct-send")
            #expect(message.connectorName == nil)
            #expect(message.recipients == ["alice@contoso.com"])
        }
    }

    /// A tenant that refuses Direct Send: `550 5.7.68` for internal recipients too.
    @Test func directSendCanBeRejected() async throws {
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.rejectDirectSend = true }) { endpoint in
            let result = try await endpoint.mx(from: "127.0.0.3", to: ["alice@contoso.com"])
            #expect(result.recipients.first?.status == "550 5.7.68", "\(result.recipients)")
            #expect(result.recipients.first?.text.contains("TenantInboundAttribution; Direct Send not allowed") == true)
            #expect(try endpoint.sandbox.mailStore.messages().isEmpty)
            // A connector still relays.
            let connector = try await endpoint.mx(from: "127.0.0.2", to: ["alice@contoso.com"])
            #expect(connector.data?.code == 250)
        }
    }

    /// A client certificate from a CA the MX trusts, whose subject is the connector's: relays; another subject does not.
    @Test func connectorMatchedByClientCertificate() async throws {
        let certificates = TemporaryDirectory("sandbox-client-ca")
        let authority = try SandboxCertificateAuthority(commonName: "Contoso test CA")
        let caFile = try certificates.write("client-ca.pem", authority.certificatePEM, mode: 0o644)
        let good = try authority.issueClientCertificate(commonName: "relay.contoso.com").write(to: certificates.file("good"))
        let other = try authority.issueClientCertificate(commonName: "printer.contoso.com").write(to: certificates.file("other"))
        try await SandboxHTTPEndpoint.with({ Self.configure(&$0); $0.trustedClientCAFiles = [caFile] }) { endpoint in
            let matched = try await endpoint.mx(from: "127.0.0.3", to: ["carol@fabrikam.com"], certificate: good)
            #expect(matched.recipients.first?.code == 250, "\(matched.recipients)")
            #expect(matched.data?.code == 250)
            let refused = try await endpoint.mx(from: "127.0.0.3", to: ["carol@fabrikam.com"], certificate: other)
            #expect(refused.recipients.first?.status == "550 5.7.64", "\(refused.recipients)")
            let messages = try endpoint.sandbox.mailStore.messages()
            #expect(messages.map(\.connectorName) == ["relay-by-certificate"])
            #expect(messages.map(\.via) == ["connector"])
        }
    }
}
