import Foundation
import RelayCore

// Who may reach the relay and how: TLS for passwords, narrow networks, no open relay.
extension Audit {
    /// Every listener that offers AUTH requires TLS (RFC 4954 §4): a password
    /// must never cross a network in clear.
    mutating func listenersOfferAuthOnlyUnderTLS() {
        let passwordClients = configuration.clients.filter { $0.auth == .password }.map(\.name)
        for (index, listener) in configuration.server.listeners.enumerated() {
            let path = "server.listeners[\(index)]"
            let action = "AUTH only under TLS: \(path) \(listener.address)"
            let loopback = listener.address.isLoopback
            switch listener.tls {
            case .none:
                if listener.allowPlaintextAuth && !loopback {
                    add(action, "tls: none with allow_plaintext_auth: true on a non-loopback address", .fail,
                        hint: "Remove \(path).allow_plaintext_auth (the relay honours it for loopback only; a reviewer reads it as passwords in clear) and give password clients a listener with `tls: starttls` and `require_tls: true`, or `tls: implicit`.")
                } else if listener.allowPlaintextAuth {
                    add(action, "tls: none; plaintext AUTH for loopback peers only (\(listener.address.host))", .pass)
                } else if passwordClients.isEmpty {
                    add(action, "tls: none; no password clients, so AUTH is not offered", .pass)
                } else {
                    add(action, "tls: none: AUTH is not offered here (no TLS); password clients use a TLS listener", .pass)
                }
            case .implicit:
                add(action, "tls: implicit: every session, AUTH included, is under TLS", .pass)
            case .starttls:
                if passwordClients.isEmpty {
                    add(action, "tls: starttls; no password clients, so AUTH is not offered", .pass)
                } else if listener.requireTLS {
                    add(action, "tls: starttls, require_tls: true: AUTH and mail only after STARTTLS", .pass)
                } else {
                    add(action, "tls: starttls, require_tls: false; password clients \(passwordClients.listedInProse) may connect here", .warn,
                        hint: "AUTH is offered only after STARTTLS, but mail is accepted in clear before it. Set \(path).require_tls: true, and serve devices that cannot do TLS on a listener of their own.")
                }
            }
        }
    }

    /// No client network wider than the bound; `0.0.0.0/0` and `::/0` never.
    mutating func clientNetworksAreNarrow() {
        let bound = "IPv4 /\(options.widestIPv4Prefix), IPv6 /\(options.widestIPv6Prefix)"
        var findings = 0
        for (index, client) in configuration.clients.enumerated() {
            let path = "clients[\(index)].networks"
            for network in client.networks {
                guard let reason = wideness(of: network) else { continue }
                findings += 1
                add("Client network: \(path) \(network) (\(client.name))", reason, .fail,
                    hint: "Narrow \(path) to the devices' own subnets or addresses (at most \(bound); `--widest-network` sets the bound).")
            }
            if client.auth == .password && client.networks.isEmpty {
                findings += 1
                add("Client network: \(path) (\(client.name))", "auth: password without networks: any address may log in as \(client.username ?? client.name)", .warn,
                    hint: "Add \(path) with the addresses \(client.name) connects from, so that a leaked password is useless elsewhere.")
            }
        }
        if findings == 0 {
            let count = configuration.clients.reduce(0) { $0 + $1.networks.count }
            add("Client networks no wider than \(bound)", "\(count) network\(count == 1 ? "" : "s") in \(configuration.clients.count) client\(configuration.clients.count == 1 ? "" : "s"), none wider", .pass)
        }
    }

    /// Why `network` is too wide, or nil.
    func wideness(of network: RelayNetwork) -> String? {
        // 127.0.0.0/8 is this machine, however wide it looks.
        if Self.isLoopback(network) { return nil }
        if network.address.family == .v6 && network.contains(RelayIPAddress(ipv4: 0)) {
            // An IPv6 network over the mapped range (::ffff:0:0/96 or wider) admits every IPv4 address.
            return "\(network) covers every IPv4 address (the IPv4-mapped range)"
        }
        if network.prefixLength == 0 {
            return "\(network) is every address"
        }
        let widest = network.address.family == .v4 ? options.widestIPv4Prefix : options.widestIPv6Prefix
        guard network.prefixLength < widest else { return nil }
        return "/\(network.prefixLength) is wider than /\(widest)"
    }

    /// An `auth: none` client that may send anywhere from beyond loopback is
    /// one compromised device away from an open relay for the tenant.
    mutating func openRelayRisk() {
        var findings = 0
        for (index, client) in configuration.clients.enumerated() where client.auth == .none {
            guard client.allowedRecipients.contains("*"), client.networks.contains(where: { !Self.isLoopback($0) }) else { continue }
            findings += 1
            let networks = client.networks.filter { !Self.isLoopback($0) }.map(\.description).joined(separator: ", ")
            add("Recipients of clients[\(index)] (\(client.name))", "auth: none from \(networks) with allowed_recipients: [\"*\"]: any device there may send to anyone", .warn,
                hint: "Narrow clients[\(index)].allowed_recipients to `internal` (the route's accepted domains) or to `*@domain` patterns; keep `*` only for clients that must reach external recipients.")
        }
        if findings == 0 {
            add("Address-only clients limited in recipients", "no `auth: none` client outside loopback has allowed_recipients: [\"*\"]", .pass)
        }
    }

    static func isLoopback(_ network: RelayNetwork) -> Bool {
        // Loopback only when both ends of the network are loopback addresses.
        network.address.isLoopback && network.prefixLength >= (network.address.family == .v4 ? 8 : 128)
    }

    /// Routes authenticate to Microsoft with app credentials, never with a mailbox password.
    mutating func noBasicAuthentication() {
        var findings = 0
        for (index, route) in configuration.routes.enumerated() where route.username != nil || route.password != nil {
            findings += 1
            add("Authentication of routes[\(index)] (\(route.name))", "basic authentication: routes[\(index)].username with a password (\(route.password.map(String.init(describing:)) ?? "none"))", .fail,
                hint: "Replace routes[\(index)].username and password_file with tenant_id, client_id, client_certificate_file and client_key_file (app-only OAuth); Microsoft turns basic SMTP AUTH off by default from the end of December 2026, and a mailbox password grants far more than sending.")
        }
        if findings == 0 {
            add("No route on basic authentication", "no route has username / password_file", .pass)
        }
    }
}
