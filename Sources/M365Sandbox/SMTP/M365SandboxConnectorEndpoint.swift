import Foundation
import Logging
import RelayCore
import SMTPCore
import SMTPNIO
import SwiftASN1
import X509

/// The tenant's MX (`contoso-com.mail.protection.outlook.com:25`) as a
/// relay sees it: STARTTLS (a client certificate is requested, not
/// required), no AUTH. A connection matching an inbound connector, by its IP
/// or by its certificate's subject, may relay to anyone; any other is Direct
/// Send and may only reach the tenant's accepted domains.
final class M365SandboxConnectorEndpoint: SMTPServerDelegate {
    private let configuration: M365SandboxConfiguration
    private let tenant: M365SandboxTenant
    private let networks: [(connector: String, network: RelayNetwork)]
    private let acceptedDomains: Set<String>

    init(tenant: M365SandboxTenant) throws {
        configuration = tenant.configuration
        self.tenant = tenant
        var networks: [(String, RelayNetwork)] = []
        for connector in configuration.connectors {
            for text in connector.senderNetworks {
                guard let network = RelayNetwork(parsing: text) else {
                    throw SandboxCertificateError("connector \(connector.name): not a network: \(text)")
                }
                networks.append((connector.name, network))
            }
        }
        self.networks = networks
        acceptedDomains = configuration.effectiveAcceptedDomains
    }

    /// The connector this connection matches, by IP first, then by client certificate.
    private func matchingConnector(address: String, key: String) -> String? {
        if let ip = RelayIPAddress(parsing: address), let match = networks.first(where: { $0.network.contains(ip) }) {
            return match.connector
        }
        guard let certificate = tenant.connections.peerCertificate(key) else { return nil }
        let names = Self.subjectNames(of: certificate)
        return configuration.connectors.first { connector in
            guard let subject = connector.certificateSubject?.lowercased() else { return false }
            return names.contains(subject)
        }?.name
    }

    /// Subject CN and DNS SANs, lowercased.
    static func subjectNames(of certificate: Certificate) -> Set<String> {
        var names = Set<String>()
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                names.insert(String(describing: attribute.value).lowercased())
            }
        }
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for case .dnsName(let name) in alternatives { names.insert(name.lowercased()) }
        }
        return names
    }

    func sessionConfiguration(for connection: SMTPConnectionInfo) -> SMTPServerSession.Configuration {
        var limits = SMTPServerLimits()
        limits.maxMessageSize = configuration.maxMessageSize
        limits.maxRecipients = configuration.maxRecipients
        var session = SMTPServerSession.Configuration(hostname: configuration.hostname, limits: limits)
        session.greetingText = "Microsoft ESMTP MAIL Service ready"
        session.startTLSAvailable = true
        session.clientAddress = connection.clientAddress
        let key = M365SandboxConnections.key(connection)
        let address = connection.clientAddress
        let unknown = Set(configuration.unknownRecipients.map { $0.lowercased() })
        session.senderCheck = { [tenant] sender in
            tenant.faults.take(endpoint: .connector, stage: .mail, mailbox: sender.address)?.smtpReply
        }
        session.recipientCheck = { [self] recipient in
            if unknown.contains(recipient.address.lowercased()) {
                return SMTPReply(550, .init(5, 1, 10), "RESOLVER.ADR.RecipientNotFound; Recipient \(recipient.address) not found by SMTP address lookup")
            }
            if matchingConnector(address: address, key: key) != nil { return nil }
            let domain = recipient.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
            guard acceptedDomains.contains(domain) else {
                return SMTPReply(550, .init(5, 7, 64), "TenantAttribution; Relay Access Denied")
            }
            if configuration.rejectDirectSend {
                return SMTPReply(550, .init(5, 7, 68), "TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources")
            }
            return nil
        }
        return session
    }

    func openMessage(envelope: SMTPSessionEnvelope, connection: SMTPConnectionInfo) throws -> any SMTPMessageSink {
        let key = M365SandboxConnections.key(connection)
        let connector = matchingConnector(address: connection.clientAddress, key: key)
        let sender = envelope.sender.address
        let context = M365SandboxSinkContext(
            mailbox: sender, allowedSenders: nil, via: connector == nil ? "direct-send" : "connector", connectorName: connector,
            hostname: configuration.hostname,
            gate: { [tenant, now = configuration.now] _ in
                if let fault = tenant.faults.take(endpoint: .connector, stage: .data, mailbox: sender) {
                    return fault.close ? .closeWithoutReply : .refuse(fault.smtpReply ?? SMTPReply(451, .init(4, 3, 0), "Fault"))
                }
                return .store(acceptedAt: now())
            },
            closeConnection: { [tenant] in await tenant.connections.close(key) })
        return try tenant.store.makeSink(envelope: envelope, connection: connection, context: context)
    }
}
