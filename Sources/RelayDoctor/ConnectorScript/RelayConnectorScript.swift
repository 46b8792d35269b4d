import Foundation
import RelayCore

/// `m365-relay connector-script`: the Exchange Online PowerShell that sets up
/// the tenant side of the configuration's routes.
///
/// - `connector` routes: an OnPremises inbound connector matching the relay by
///   its public address (`server.public_addresses`) or, when the route has a
///   `client_certificate_file`, by the certificate's name.
/// - `smtp` routes with app credentials (app-only SMTP AUTH): the app's service
///   principal in Exchange, mailbox access, SMTP AUTH on for the mailbox, and
///   Send As for the senders the route carries.
/// - `graph` routes with app credentials: an application access policy
///   limiting the app to a mail-enabled security group of its sending
///   mailboxes. It is the primary because it works with the Entra `Mail.Send`
///   grant the app already has and needs no value the configuration lacks;
///   RBAC for Applications, Microsoft's newer model, follows as commented
///   commands because it only restricts once that Entra grant is removed.
/// - `direct-send` routes: no connector; the organisation's `RejectDirectSend` checked.
///
/// Every value comes from the configuration, single-quoted for PowerShell.
/// The one value it cannot hold, the object id of an app's enterprise
/// application, is a variable at the top that the script refuses to run without.
public enum RelayConnectorScript {
    /// A generated script and what it asks the administrator to fill in.
    public struct Script: Sendable, Hashable {
        /// The PowerShell, ending with a newline.
        public var text: String
        /// One line per variable at the top of the script that must be set
        /// before it runs (never a secret), for a note on standard error.
        public var valuesToFillIn: [String]
    }

    /// The script for `configuration`, reading certificate files from disk.
    public static func render(configuration: RelayConfiguration) -> String {
        generate(configuration: configuration).text
    }

    /// The script, with certificate files read through `readFile` (nil: unreadable).
    public static func generate(
        configuration: RelayConfiguration,
        readFile: @escaping (String) -> Data? = { FileManager.default.contents(atPath: $0) }
    ) -> Script {
        var builder = ConnectorScriptBuilder(configuration: configuration, readFile: readFile)
        return builder.build()
    }

    /// The routes whose tenant side the script sets up; empty: nothing to print.
    public static func routesNeedingSetup(in configuration: RelayConfiguration) -> [RelayConfiguration.Route] {
        configuration.routes.filter {
            if case .none = RouteSetup(route: $0) { return false }
            return true
        }
    }

    /// Why no route needs a script, for the command's error message.
    public static func noSetupReason(in configuration: RelayConfiguration) -> String {
        let reasons = configuration.routes.map { route -> String in
            if case .none(let why) = RouteSetup(route: route) { return "\(route.name): \(why)" }
            return route.name
        }
        return "no route needs Exchange Online setup (connector, app-only smtp, graph or direct-send to Microsoft 365)"
            + (reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))
    }
}

/// What a route needs on the tenant side.
enum RouteSetup {
    case connector
    case appSMTP(clientID: String)
    case graphApp(clientID: String)
    case directSend
    case none(String)

    init(route: RelayConfiguration.Route) {
        let appCredentials = route.tenantID != nil && route.clientID != nil
            && (route.clientSecret != nil || route.clientCertificateFile != nil || route.clientKey != nil)
        switch route.mode {
        case .sandbox:
            self = .none("the built-in sandbox")
        case .connector, .directSend:
            if route.effectiveMXEndpoint?.isLoopback == true {
                self = .none("mx_endpoint \(route.effectiveMXEndpoint!) is loopback, not Microsoft 365")
            } else {
                self = route.mode == .connector ? .connector : .directSend
            }
        case .smtp:
            if let endpoint = route.smtpEndpoint, endpoint.isLoopback {
                self = .none("smtp_endpoint \(endpoint) is loopback, not Microsoft 365")
            } else if appCredentials, let clientID = route.clientID {
                self = .appSMTP(clientID: clientID)
            } else if route.username != nil {
                self = .none("basic authentication (username / password_file), which needs no script; move it to app credentials")
            } else {
                self = .none("a token you manage (token_file): the configuration does not name its app")
            }
        case .graph:
            if let host = URL(string: route.graphURL)?.host, RelayEndpoint(host: host, port: 443).isLoopback {
                self = .none("graph_url \(route.graphURL) is loopback, not Microsoft 365")
            } else if appCredentials, let clientID = route.clientID {
                self = .graphApp(clientID: clientID)
            } else {
                self = .none("a token you manage (token_file): the configuration does not name its app")
            }
        }
    }
}
