import Foundation
import RelayCore

/// One network endpoint the routes depend on, probed once however many routes use it.
struct RelayDoctorEndpoint: Hashable, Sendable {
    enum Kind: Hashable, Sendable {
        /// SMTP with STARTTLS (submission on 587, the tenant MX on 25).
        case smtp
        /// TLS from the first byte (the identity platform, Graph).
        case https
    }

    var kind: Kind
    var host: String
    var port: Int
    /// Extra trust anchors of the routes that use it (`ca_file`).
    var caFile: String?
    /// False for a plaintext endpoint (`tls: none`, an `http://` loopback URL): TCP only.
    var tls: Bool

    /// `host:port`, IPv6 in brackets.
    var address: String { RelayEndpoint(host: host, port: port).description }

    /// The firewall hint for this endpoint's port.
    var firewallHint: String {
        "Allow outbound TCP \(port) from this host to \(host) (firewall, security group, proxy)"
            + (kind == .smtp && port == 25 ? "; many ISPs and clouds block port 25 outbound: ask for it to be opened" : "")
            + ", and check the name resolves"
    }
}

extension RelayConfiguration.Route {
    /// Client credentials for the identity platform: tenant, app and a secret or certificate.
    /// A connector's certificate is its TLS identity, not an app credential.
    var doctorHasAppCredentials: Bool {
        guard mode == .smtp || mode == .graph, tenantID != nil, clientID != nil else { return false }
        return clientSecret != nil || (clientCertificateFile != nil && clientKey != nil)
    }

    /// The host and port of `login_url`.
    var doctorLoginEndpoint: RelayDoctorEndpoint? { Self.doctorEndpoint(url: loginURL, caFile: caFile) }

    /// The host and port of `graph_url`.
    var doctorGraphEndpoint: RelayDoctorEndpoint? { Self.doctorEndpoint(url: graphURL, caFile: caFile) }

    static func doctorEndpoint(url: String, caFile: String?) -> RelayDoctorEndpoint? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              var host = components.host, !host.isEmpty else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let secure = scheme == "https"
        return RelayDoctorEndpoint(kind: .https, host: host, port: components.port ?? (secure ? 443 : 80), caFile: caFile, tls: secure)
    }

    /// The endpoints this route needs, each with what it is for.
    var doctorEndpoints: [(endpoint: RelayDoctorEndpoint, label: String)] {
        var result: [(RelayDoctorEndpoint, String)] = []
        func login() {
            if doctorHasAppCredentials, let endpoint = doctorLoginEndpoint { result.append((endpoint, "identity platform")) }
        }
        switch mode {
        case .smtp:
            let endpoint = smtpEndpoint ?? RelayEndpoint(host: "smtp.office365.com", port: 587)
            result.append((RelayDoctorEndpoint(kind: .smtp, host: endpoint.host, port: endpoint.port, caFile: caFile, tls: tls != .none), "SMTP endpoint"))
            login()
        case .graph:
            login()
            if let endpoint = doctorGraphEndpoint { result.append((endpoint, "Graph")) }
        case .connector, .directSend:
            if let endpoint = effectiveMXEndpoint {
                result.append((RelayDoctorEndpoint(kind: .smtp, host: endpoint.host, port: endpoint.port, caFile: caFile, tls: tls != .none), "tenant MX"))
            }
        case .sandbox:
            break
        }
        return result
    }
}

extension RelayConfiguration {
    /// The clients whose mail this route carries.
    func doctorClients(of route: Route) -> [Client] {
        clients.filter { $0.route == route.name }
    }

    /// The first concrete sender address a client of `route` uses: its
    /// `rewrite_sender`, else an `allowed_senders` entry without a wildcard.
    func doctorConcreteSender(of route: Route) -> String? {
        for client in doctorClients(of: route) {
            if let rewrite = client.rewriteSender { return rewrite }
            if let sender = client.allowedSenders.first(where: { !$0.contains("*") && $0.contains("@") }) { return sender }
        }
        return nil
    }

    /// The mailbox a route authenticates or sends as: `mailbox`, else a concrete sender of its clients.
    func doctorMailbox(of route: Route) -> String? {
        route.mailbox ?? doctorConcreteSender(of: route)
    }

    /// A domain the route sends from: `domain`, an accepted domain, else one of its clients' sender domains.
    func doctorSenderDomain(of route: Route) -> String? {
        if let domain = route.domain, !domain.isEmpty { return domain.lowercased() }
        if let domain = route.acceptedDomains.first { return domain.lowercased() }
        if let mailbox = route.mailbox, let domain = mailbox.split(separator: "@").last { return domain.lowercased() }
        for client in doctorClients(of: route) {
            for sender in [client.rewriteSender].compactMap({ $0 }) + client.allowedSenders where sender.contains("@") {
                if let domain = sender.split(separator: "@").last, !domain.contains("*") { return domain.lowercased() }
            }
        }
        return nil
    }
}

extension M365ReplyClassification {
    /// What Microsoft's reply means and how to fix it, as a row's hint.
    var hint: String { [meaning, remedy].compactMap { $0 }.joined(separator: ". ") }
}
