import Foundation
import M365Delivery
import NIOSSL
import RelayCore
import RelayServer
import SMTPCore

/// Step Connector, per `connector` route: a transaction to the tenant MX
/// that stops before DATA. The recipient is outside the tenant, where only
/// mail the tenant attributes to one of its inbound connectors may go, so an
/// accepted `RCPT` proves the connector matches this relay (by its IP or its
/// certificate); `550 5.7.64 TenantAttribution` says it does not.
extension RelayDoctorRun {
    /// A recipient outside every tenant (RFC 2606 reserves example.com); nothing is ever sent to it.
    static let connectorProbeRecipient = "m365-relay-doctor@example.com"

    mutating func connectorRows() async -> [RelayDoctorRow] {
        var rows: [RelayDoctorRow] = []
        let step = RelayDoctorStep.connector
        let routes = configuration.routes.filter { $0.mode == .connector }
        if routes.isEmpty {
            return [RelayDoctorRow(step: step, action: "Inbound connector attribution", verification: "no connector route", result: .info)]
        }
        for route in routes {
            let mx = route.effectiveMXEndpoint
            let action = "Tenant MX \(mx?.description ?? "-") attributes route \(route.name) to a connector"
            if let failed = incompleteRoutes[route.name] {
                rows.append(skipped(step, action, because: failed))
                continue
            }
            guard let mx else { continue }
            let endpoint = RelayDoctorEndpoint(kind: .smtp, host: mx.host, port: mx.port, caFile: route.caFile, tls: route.tls != .none)
            if let failed = unreachable[endpoint] {
                rows.append(skipped(step, action, because: failed))
                continue
            }
            rows.append(await connectorRow(route, mx: mx, action: action))
        }
        return rows
    }

    private func connectorRow(_ route: RelayConfiguration.Route, mx: RelayEndpoint, action: String) async -> RelayDoctorRow {
        let step = RelayDoctorStep.connector
        let domain = configuration.doctorSenderDomain(of: route) ?? configuration.server.hostname
        let sender = "postmaster@\(domain)"
        let context: NIOSSLContext?
        do {
            context = try Self.connectorTLSContext(route)
        } catch {
            return RelayDoctorRow(step: step, action: action, verification: "cannot use the client certificate or ca_file: \(error)", result: .fail,
                                  hint: "client_certificate_file must hold the certificate chain and client_key_file its private key (PEM), readable by the relay's user")
        }
        let probe: RelayDoctorSMTPProbe
        do {
            probe = try await RelayDoctorSMTPProbe.open(host: mx.host, port: mx.port, heloName: configuration.server.hostname, timeout: options.timeout, group: group)
        } catch {
            return RelayDoctorRow(step: step, action: action, verification: error.description, result: .fail,
                                  hint: "Allow outbound TCP \(mx.port) to \(mx.host)")
        }
        var transcript: [String] = []
        let row: RelayDoctorRow
        do {
            try await probe.ehlo()
            if let context {
                _ = try await probe.startTLS(context: context)
                transcript.append(route.clientCertificateFile == nil ? "STARTTLS" : "STARTTLS with client certificate")
            }
            guard let from = try? SMTPMailbox(parsing: sender), let to = try? SMTPMailbox(parsing: Self.connectorProbeRecipient) else {
                throw RelayDoctorProbeError(stage: .mail, detail: "\(sender) is not a valid address: check the route's domain")
            }
            let mail = try await probe.send(.mail(from: .mailbox(from)), stage: .mail)
            transcript.append("MAIL FROM:<\(sender)> \(mail.code)")
            guard mail.code == 250 else { throw RelayDoctorProbeError(stage: .mail, reply: mail, detail: "") }
            let rcpt = try await probe.send(.rcpt(to: to), stage: .rcpt)
            transcript.append("RCPT TO:<\(Self.connectorProbeRecipient)> \(rcpt)")
            _ = try? await probe.send(.rset, stage: .rcpt)
            if rcpt.code == 250 || rcpt.code == 251 {
                row = RelayDoctorRow(step: step, action: action,
                                     verification: transcript.joined(separator: "; ") + "; RSET: the tenant attributes this relay to a connector", result: .pass)
            } else {
                row = Self.refusedRow(rcpt, route: route, action: action, transcript: transcript, configuration: configuration)
            }
        } catch let error as RelayDoctorProbeError {
            if let reply = error.reply {
                row = Self.refusedRow(reply, route: route, action: action, transcript: transcript + [error.description], configuration: configuration)
            } else {
                row = RelayDoctorRow(step: step, action: action, verification: (transcript + [error.description]).joined(separator: "; "), result: .fail,
                                     hint: "The tenant MX was reachable in the Connectivity step; a handshake failing only with the client certificate means the MX does not accept it: check its chain and key")
            }
        } catch {
            row = RelayDoctorRow(step: step, action: action, verification: "\(error)", result: .fail, hint: "")
        }
        await probe.quit()
        return row
    }

    /// The TLS context the connector transport uses: the route's trust, and its client certificate when it has one.
    static func connectorTLSContext(_ route: RelayConfiguration.Route) throws -> NIOSSLContext? {
        guard route.tls != .none else { return nil }
        if let certificateFile = route.clientCertificateFile, let key = route.clientKey {
            let certificate = try String(contentsOfFile: certificateFile, encoding: .utf8)
            return try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile, clientCertificatePEM: certificate, clientKeyPEM: SASLSecret(try RelaySecrets.read(key)))
        }
        return try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile)
    }

    static func refusedRow(_ reply: SMTPReply, route: RelayConfiguration.Route, action: String, transcript: [String], configuration: RelayConfiguration) -> RelayDoctorRow {
        let classification = M365ReplyClassification.classify(.smtp(reply), on: .connector, canRefreshToken: false)
        var hint = classification.hint
        if reply.enhanced == SMTPEnhancedStatus(5, 7, 64) {
            let identity = route.clientCertificateFile.map { "the certificate subject of \($0)" }
                ?? "the sender IP addresses \(configuration.server.publicAddresses.map(\.description).joined(separator: ", "))"
            hint = "The tenant did not attribute this relay to an inbound connector (TenantAttribution): the connector's "
                + (route.clientCertificateFile == nil ? "sender IP addresses must include " : "TlsSenderCertificateName must match ")
                + identity + "; `m365-relay connector-script` prints the New-InboundConnector command"
        }
        return RelayDoctorRow(step: RelayDoctorStep.connector, action: action, verification: transcript.joined(separator: "; "), result: .fail, hint: hint)
    }
}
