import Foundation
import RelayCore
import RelayServer

// Expiry, personal data kept, the admin API.
extension Audit {
    /// Certificates and secrets do not expire within the window (default 30 days).
    mutating func credentialsDoNotExpireSoon() {
        // One configuration per item, so that each expiry comes with its key path.
        var items: [(keyPath: String, expiries: [RelayCredentialExpiry])] = []
        if let tls = configuration.server.tls {
            var single = RelayConfiguration()
            single.server.tls = tls
            items.append(("server.tls.certificate_file", RelayCredentialExpiry.expiries(in: single)))
        }
        for (index, route) in configuration.routes.enumerated() {
            var single = RelayConfiguration()
            single.routes = [route]
            for expiry in RelayCredentialExpiry.expiries(in: single) {
                let key = switch expiry.what {
                case .certificate: "client_certificate_file"
                case .secret: "client_secret_expires"
                case .token: route.token.map { if case .environment = $0 { "token_env" } else { "token_file" } } ?? "token_file"
                }
                items.append(("routes[\(index)].\(key)", [expiry]))
            }
        }
        var checked = 0
        for (keyPath, expiries) in items {
            for expiry in expiries {
                checked += 1
                let action = "Expiry: \(keyPath) (\(expiry.name))"
                let day = RelayConfigurationSyntax.formatDay(expiry.notAfter)
                let left = expiry.notAfter.timeIntervalSince(now)
                let renew = switch expiry.what {
                case .certificate: "Renew the certificate and replace the file (the relay rereads its TLS certificate on SIGHUP)."
                case .secret: "Create a new client secret in Entra (App registrations > Certificates & secrets), write it to the secret file and update \(keyPath); better, move to a certificate."
                case .token: "A static token cannot renew itself: give the route tenant_id, client_id and a certificate instead of \(keyPath)."
                }
                if left <= 0 {
                    add(action, "expired on \(day)", .fail, hint: renew)
                } else if left < options.expiryWindow {
                    add(action, "expires on \(day), in \(Self.daysLeft(left)), within \(Self.duration(options.expiryWindow))", .fail, hint: renew)
                } else {
                    add(action, "valid until \(day) (\(Self.daysLeft(left)) left)", .pass)
                }
            }
        }
        // A secret without its date cannot be watched: Microsoft does not tell the relay.
        for (index, route) in configuration.routes.enumerated() where route.clientSecret != nil && route.clientSecretExpires == nil {
            checked += 1
            add("Expiry: routes[\(index)].client_secret_expires (\(route.name))", "client secret with no expiry date given: it cannot be watched", .warn,
                hint: "Add routes[\(index)].client_secret_expires: YYYY-MM-DD, the expiry Entra shows under Certificates & secrets.")
        }
        if checked == 0 {
            add("Expiry of certificates and secrets", "no certificate or secret with an expiry date is configured", .pass)
        }
    }

    static func daysLeft(_ interval: TimeInterval) -> String {
        let days = Int(interval / 86_400)
        if days >= 1 { return days == 1 ? "1 day" : "\(days) days" }
        let hours = max(1, Int(interval / 3600))
        return hours == 1 ? "1 hour" : "\(hours) hours"
    }

    /// Message bodies go once delivered; the trace (personal data: addresses) has a bounded retention.
    mutating func messageBodiesAndTraceRetention() {
        let trace = configuration.trace
        if trace.keepBodies == 0 {
            add("Message bodies removed after delivery", "trace.keep_bodies: 0s: content is removed once delivered or failed", .pass)
        } else {
            add("Message bodies removed after delivery", "trace.keep_bodies: \(RelayConfigurationSyntax.formatDuration(trace.keepBodies)): content of finished messages is kept \(Self.duration(trace.keepBodies))", .warn,
                hint: "Set trace.keep_bodies: 0s unless inspecting contents is a documented need; message bodies are personal data (GDPR art. 5(1)(c), HIPAA minimum necessary).")
        }
        let retention = "trace.retention: \(RelayConfigurationSyntax.formatDuration(trace.retention))"
        if trace.retention > options.longestTraceRetention {
            add("Trace retention", "\(retention): senders and recipients are kept \(Self.duration(trace.retention)), more than \(Self.duration(options.longestTraceRetention))", .warn,
                hint: "Lower trace.retention to what troubleshooting needs (default 30d); longer keeps personal data beyond its purpose (GDPR art. 5(1)(e)).")
        } else {
            add("Trace retention", "\(retention): finished messages leave the trace \(Self.duration(trace.retention)) after they finish", .pass)
        }
    }

    /// The admin API (the trace, queue actions) is not reachable without a token.
    mutating func adminAPIIsClosed() {
        let action = "Admin API protected"
        guard let admin = configuration.admin else {
            add(action, "no admin section: the admin API is off", .pass)
            return
        }
        switch (admin.address.isLoopback, admin.token) {
        case (false, nil):
            add(action, "admin.address \(admin.address) is reachable from the network without a token", .fail,
                hint: "Set admin.token_file (or token_env) to a long random token, or bind admin.address to 127.0.0.1.")
        case (true, nil):
            add(action, "admin.address \(admin.address) is loopback, no token: open to every local user", .pass,
                hint: "Set admin.token_file too if other users log in to this machine.")
        case (false, let token?):
            add(action, "admin.address \(admin.address) with a token (\(token)), over plain HTTP", .warn,
                hint: "The token and the trace cross the network unencrypted: bind admin.address to 127.0.0.1 behind a TLS reverse proxy.")
        case (true, let token?):
            add(action, "admin.address \(admin.address) is loopback and needs the token (\(token))", .pass)
        }
    }
}
