import Foundation
import Logging
import M365Delivery
import M365Sandbox
import NIOCore
import NIOSSL
import RelayCore
import SMTPCore

/// Builds one transport per route from the configuration.
enum RelayRouteTransports {
    static func make(
        configuration: RelayConfiguration, sandbox: EmbeddedSandbox?,
        group: any EventLoopGroup, logger: Logger
    ) throws -> [String: any RelayTransport] {
        var transports: [String: any RelayTransport] = [:]
        for route in configuration.routes {
            let bounceMailbox = bounceSender(for: route, in: configuration)
            var routeLogger = logger
            routeLogger[metadataKey: "route"] = "\(route.name)"
            switch route.mode {
            case .sandbox:
                guard let sandbox else { throw RelayStartupError("route \(route.name): the embedded sandbox is not running") }
                let context: NIOSSLContext
                do { context = try SMTPSubmissionTransport.makeTLSContext(caFile: sandbox.instance.caFile) }
                catch { throw RelayStartupError("route \(route.name): cannot set up TLS to the sandbox: \(error)") }
                var settings = SMTPSubmissionTransport.Settings(
                    host: "127.0.0.1", port: sandbox.port, serverHostname: "localhost", tls: .required, tlsContext: context,
                    heloName: configuration.server.hostname, mailbox: route.mailbox)
                settings.bounceMailbox = bounceMailbox
                transports[route.name] = SMTPSubmissionTransport(
                    settings: settings, credentials: StaticCredentialProvider(.xoauth2(token: SASLSecret(sandbox.token))), group: group, logger: routeLogger)

            case .smtp:
                let endpoint = route.smtpEndpoint ?? RelayEndpoint(host: "smtp.office365.com", port: 587)
                let credentials: StaticCredentialProvider
                if let password = route.password {
                    guard let username = route.username else { throw RelayStartupError("route \(route.name): password_file needs username") }
                    routeLogger.warning("Route uses basic authentication (AUTH LOGIN); Microsoft 365 turns it off by default from the end of December 2026")
                    credentials = StaticCredentialProvider(.login(username: username, password: SASLSecret(try RelaySecrets.read(password))))
                } else if let token = route.token {
                    credentials = StaticCredentialProvider(.xoauth2(token: SASLSecret(try RelaySecrets.read(token))))
                } else {
                    credentials = StaticCredentialProvider(.none)
                }
                let tlsPolicy: SMTPClientSession.TLSPolicy = route.tls == .none ? .none : .required
                var context: NIOSSLContext?
                if tlsPolicy != .none {
                    do { context = try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile) }
                    catch { throw RelayStartupError("route \(route.name): cannot set up TLS: \(error)") }
                }
                var settings = SMTPSubmissionTransport.Settings(
                    host: endpoint.host, port: endpoint.port, tls: tlsPolicy, tlsContext: context,
                    heloName: configuration.server.hostname, mailbox: route.mailbox)
                settings.bounceMailbox = bounceMailbox
                transports[route.name] = SMTPSubmissionTransport(settings: settings, credentials: credentials, group: group, logger: routeLogger)

            case let mode:
                throw RelayStartupError("route \(route.name): mode \(mode.rawValue) is not available in this version (available: smtp, sandbox)")
            }
        }
        return transports
    }

    /// Who sends a route's delivery status notifications: its `mailbox`, else
    /// `delivery.operator`, else the relay's postmaster (fine for the sandbox;
    /// a real tenant needs one of the first two).
    static func bounceSender(for route: RelayConfiguration.Route, in configuration: RelayConfiguration) -> String {
        route.mailbox ?? configuration.delivery.operatorAddress ?? "postmaster@\(configuration.server.hostname)"
    }
}

