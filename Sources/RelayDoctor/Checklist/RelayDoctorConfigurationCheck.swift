import Foundation
import RelayCore

/// Step Configuration: the file is valid, each route has what its mode needs,
/// and what this build parses but ignores.
enum RelayDoctorConfigurationCheck {
    /// One fail row per problem of a file that did not load.
    static func problemRows(_ error: RelayConfigurationError, path: String?) -> [RelayDoctorRow] {
        let file = path ?? "the configuration"
        return error.problems.map { problem in
            RelayDoctorRow(
                step: RelayDoctorStep.configuration, action: "Configuration file \(file) is valid",
                verification: "\(problem.keyPath): \(problem.reason)", result: .fail,
                hint: problem.keyPath == "(file)"
                    ? "Give the right file with --config FILE (default ./m365-relay.yaml)"
                    : "Fix \(problem.keyPath) in \(file); `m365-relay check-config --config \(file)` lists every problem")
        }
    }

    /// What the route lacks for its mode; empty when complete.
    static func missing(_ route: RelayConfiguration.Route, in configuration: RelayConfiguration) -> [String] {
        var missing: [String] = []
        let hasSecret = route.clientSecret != nil
        let hasCertificate = route.clientCertificateFile != nil && route.clientKey != nil
        switch route.mode {
        case .smtp:
            let app = route.tenantID != nil && route.clientID != nil && (hasSecret || hasCertificate)
            let basic = route.username != nil && route.password != nil
            if !app && !basic && route.token == nil && route.smtpEndpoint?.isLoopback != true {
                missing.append("credentials: tenant_id, client_id and client_secret_file (or client_certificate_file and client_key_file); or token_file; or username and password_file")
            }
        case .graph:
            if route.token == nil {
                if route.tenantID == nil { missing.append("tenant_id") }
                if route.clientID == nil { missing.append("client_id") }
                if !hasSecret && !hasCertificate { missing.append("client_secret_file (or client_certificate_file and client_key_file)") }
            }
            if route.mailbox == nil && configuration.doctorConcreteSender(of: route) == nil {
                missing.append("mailbox (or clients with rewrite_sender / explicit allowed_senders): Graph sends as a mailbox")
            }
        case .connector:
            if route.effectiveMXEndpoint == nil { missing.append("mx_endpoint or domain (the tenant MX)") }
            if !hasCertificate && configuration.server.publicAddresses.isEmpty {
                missing.append("client_certificate_file and client_key_file (certificate connector), or server.public_addresses (IP connector)")
            }
        case .directSend:
            if route.effectiveMXEndpoint == nil { missing.append("mx_endpoint or domain (the tenant MX)") }
            if route.effectiveAcceptedDomains.isEmpty { missing.append("domain or accepted_domains (Direct Send reaches only these)") }
        case .sandbox:
            break
        }
        return missing
    }

    /// What the route has, for the verification column (never a secret, only where it comes from).
    static func summary(_ route: RelayConfiguration.Route, in configuration: RelayConfiguration) -> String {
        var parts: [String] = []
        switch route.mode {
        case .smtp:
            parts.append("endpoint \(route.smtpEndpoint?.description ?? "smtp.office365.com:587")")
            if route.doctorHasAppCredentials {
                parts.append("app \(route.clientID ?? "") in \(route.tenantID ?? "") with " + (route.clientSecret != nil ? "client secret" : "certificate"))
            } else if route.token != nil {
                parts.append("static token")
            } else if route.username != nil {
                parts.append("basic AUTH as \(route.username ?? "")")
            } else {
                parts.append("no AUTH (loopback)")
            }
        case .graph:
            parts.append("Graph \(route.graphURL)")
            if route.doctorHasAppCredentials {
                parts.append("app \(route.clientID ?? "") in \(route.tenantID ?? "") with " + (route.clientSecret != nil ? "client secret" : "certificate"))
            } else {
                parts.append("static token")
            }
        case .connector:
            parts.append("tenant MX \(route.effectiveMXEndpoint?.description ?? "-")")
            parts.append(route.clientCertificateFile != nil ? "client certificate \(route.clientCertificateFile ?? "")" : "public address \(configuration.server.publicAddresses.map(\.description).joined(separator: ", "))")
        case .directSend:
            parts.append("tenant MX \(route.effectiveMXEndpoint?.description ?? "-")")
            parts.append("accepted domains \(route.effectiveAcceptedDomains.joined(separator: ", "))")
        case .sandbox:
            parts.append("the built-in Microsoft 365 sandbox")
        }
        if let mailbox = configuration.doctorMailbox(of: route), route.mode == .smtp || route.mode == .graph {
            parts.append("mailbox \(mailbox)")
        }
        return parts.joined(separator: "; ")
    }
}

extension RelayDoctorRun {
    mutating func configurationRows() -> [RelayDoctorRow] {
        var rows: [RelayDoctorRow] = []
        let file = options.configurationPath
        rows.append(RelayDoctorRow(
            step: RelayDoctorStep.configuration, action: file.map { "Configuration file \($0) is valid" } ?? "Configuration",
            verification: file == nil
                ? "no configuration file: the built-in sandbox setup"
                : "parsed and validated: \(configuration.server.listeners.count) listener(s), \(configuration.clients.count) client(s), \(configuration.routes.count) route(s)",
            result: file == nil ? .info : .pass,
            hint: file == nil ? "Pass --config FILE (or create ./m365-relay.yaml) to check a real tenant" : ""))
        for route in configuration.routes {
            let action = "Route \(route.name) is complete for mode \(route.mode.rawValue)"
            let missing = RelayDoctorConfigurationCheck.missing(route, in: configuration)
            if missing.isEmpty {
                rows.append(RelayDoctorRow(step: RelayDoctorStep.configuration, action: action,
                                           verification: RelayDoctorConfigurationCheck.summary(route, in: configuration), result: .pass))
            } else {
                incompleteRoutes[route.name] = action
                rows.append(RelayDoctorRow(
                    step: RelayDoctorStep.configuration, action: action, verification: "missing: " + missing.joined(separator: "; "),
                    result: .fail, hint: "Add to routes[\(configuration.routes.firstIndex(of: route) ?? 0)] (\(route.name)): " + missing.joined(separator: "; ")))
            }
        }
        for warning in configuration.warnings {
            rows.append(RelayDoctorRow(
                step: RelayDoctorStep.configuration, action: "Configuration warning", verification: warning, result: .warn,
                hint: "This build accepts the setting but does not act on it; remove it or expect it to be ignored"))
        }
        return rows
    }
}
