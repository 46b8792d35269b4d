import AsyncHTTPClient
import Foundation
import Logging
import M365Delivery
import M365Sandbox
import NIOCore
import NIOSSL
import RelayCore
import SMTPCore

/// Builds one transport per route from the configuration, with the OAuth
/// token providers and HTTP clients they share.
public struct RelayRouteTransports: Sendable {
    public var transports: [String: any RelayTransport] = [:]
    /// Token providers, one per app registration (tenant, client id, credential, login host).
    var tokenProviders: [M365TokenProvider] = []
    /// Each route's token provider, when it has one (for token expiry in the API and metrics).
    var tokenProvidersByRoute: [String: M365TokenProvider] = [:]
    /// HTTP clients to shut down after delivery stops.
    var httpClients: [HTTPClient] = []

    static func make(
        configuration: RelayConfiguration, sandbox: EmbeddedSandbox?,
        group: any EventLoopGroup, logger: Logger
    ) throws -> RelayRouteTransports {
        var built = RelayRouteTransports()
        do {
            try built.build(configuration: configuration, sandbox: sandbox, group: group, logger: logger)
        } catch {
            built.shutdownNow()
            throw error
        }
        return built
    }

    /// The transports of routes that reach Microsoft 365 (or a sandbox) over
    /// the network, as `serve` builds them; for `doctor --send-test`. A
    /// `sandbox` route needs the embedded sandbox and is refused here.
    public static func make(configuration: RelayConfiguration, group: any EventLoopGroup, logger: Logger) throws -> RelayRouteTransports {
        try make(configuration: configuration, sandbox: nil, group: group, logger: logger)
    }

    /// Stops token refreshes and HTTP clients (after delivery has stopped).
    public func shutdown() async {
        for provider in tokenProviders { await provider.shutdown() }
        for client in httpClients { try? await client.shutdown() }
    }

    private func shutdownNow() {
        for client in httpClients { try? client.syncShutdown() }
    }

    private mutating func build(configuration: RelayConfiguration, sandbox: EmbeddedSandbox?, group: any EventLoopGroup, logger: Logger) throws {
        var providers: [String: M365TokenProvider] = [:]
        for route in configuration.routes {
            let bounceMailbox = Self.bounceSender(for: route, in: configuration)
            var routeLogger = logger
            routeLogger[metadataKey: "route"] = "\(route.name)"
            func failure(_ what: String, _ error: any Error) -> RelayStartupError {
                RelayStartupError("route \(route.name): \(what): \(error)")
            }

            /// The route's app-only token provider, shared by routes of the same app.
            func tokenProvider() throws -> M365TokenProvider? {
                guard let tenant = route.tenantID, let client = route.clientID else { return nil }
                let credential: M365TokenProvider.Credential
                let credentialKey: String
                if let secret = route.clientSecret {
                    credential = .secret(SASLSecret(try RelaySecrets.read(secret)))
                    credentialKey = "secret:\(secret)"
                } else if let certificateFile = route.clientCertificateFile, let key = route.clientKey {
                    let certificate: String
                    do { certificate = try String(contentsOfFile: certificateFile, encoding: .utf8) }
                    catch { throw RelayStartupError("route \(route.name): cannot read client_certificate_file \(certificateFile): \((error as NSError).localizedDescription)") }
                    credential = .certificate(certificatePEM: certificate, privateKeyPEM: SASLSecret(try RelaySecrets.read(key)))
                    credentialKey = "certificate:\(certificateFile)"
                } else {
                    return nil
                }
                let key = [route.loginURL, tenant.lowercased(), client.lowercased(), credentialKey, route.caFile ?? ""].joined(separator: "|")
                if let existing = providers[key] {
                    tokenProvidersByRoute[route.name] = existing
                    return existing
                }
                let http = try httpClient(caFile: route.caFile, group: group)
                var providerLogger = logger
                providerLogger[metadataKey: "component"] = "oauth"
                providerLogger[metadataKey: "client_id"] = "\(client)"
                let provider: M365TokenProvider
                do {
                    provider = try M365TokenProvider(
                        settings: .init(loginURL: route.loginURL, tenantID: tenant, clientID: client, credential: credential),
                        httpClient: http, logger: providerLogger)
                } catch {
                    throw failure("cannot use the app credential", error)
                }
                providers[key] = provider
                tokenProviders.append(provider)
                tokenProvidersByRoute[route.name] = provider
                return provider
            }

            func smtpCredentials() throws -> any SMTPCredentialProvider {
                if let password = route.password {
                    guard let username = route.username else { throw RelayStartupError("route \(route.name): password_file needs username") }
                    routeLogger.warning("Route uses basic authentication (AUTH LOGIN); Microsoft 365 turns it off by default from the end of December 2026")
                    return StaticCredentialProvider(.login(username: username, password: SASLSecret(try RelaySecrets.read(password))))
                }
                if let provider = try tokenProvider() {
                    return OAuthCredentialProvider(tokens: provider, scope: route.effectiveScope)
                }
                if let token = route.token {
                    return StaticCredentialProvider(.xoauth2(token: SASLSecret(try RelaySecrets.read(token))))
                }
                return StaticCredentialProvider(.none)
            }

            switch route.mode {
            case .sandbox:
                guard let sandbox else { throw RelayStartupError("route \(route.name): the embedded sandbox is not running") }
                let context: NIOSSLContext
                do { context = try SMTPSubmissionTransport.makeTLSContext(caFile: sandbox.instance.caFile) }
                catch { throw failure("cannot set up TLS to the sandbox", error) }
                var settings = SMTPSubmissionTransport.Settings(
                    host: "127.0.0.1", port: sandbox.port, serverHostname: "localhost", tls: .required, tlsContext: context,
                    heloName: configuration.server.hostname, mailbox: route.mailbox)
                settings.bounceMailbox = bounceMailbox
                transports[route.name] = SMTPSubmissionTransport(
                    settings: settings, credentials: StaticCredentialProvider(.xoauth2(token: SASLSecret(sandbox.token))), group: group, logger: routeLogger)

            case .smtp:
                let endpoint = route.smtpEndpoint ?? RelayEndpoint(host: "smtp.office365.com", port: 587)
                let credentials = try smtpCredentials()
                let tlsPolicy: SMTPClientSession.TLSPolicy = route.tls == .none ? .none : .required
                var context: NIOSSLContext?
                if tlsPolicy != .none {
                    do { context = try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile) }
                    catch { throw failure("cannot set up TLS", error) }
                }
                var settings = SMTPSubmissionTransport.Settings(
                    host: endpoint.host, port: endpoint.port, tls: tlsPolicy, tlsContext: context,
                    heloName: configuration.server.hostname, mailbox: route.mailbox)
                settings.bounceMailbox = bounceMailbox
                transports[route.name] = SMTPSubmissionTransport(settings: settings, credentials: credentials, group: group, logger: routeLogger)

            case .connector, .directSend:
                // Both speak to the tenant's MX without AUTH; a connector may present a certificate.
                guard let endpoint = route.effectiveMXEndpoint else {
                    throw RelayStartupError("route \(route.name): needs `domain` or `mx_endpoint`")
                }
                let tlsPolicy: SMTPClientSession.TLSPolicy = route.tls == .none ? .none : .required
                var context: NIOSSLContext?
                if tlsPolicy != .none {
                    do {
                        if route.mode == .connector, let certificateFile = route.clientCertificateFile, let key = route.clientKey {
                            let certificate = try String(contentsOfFile: certificateFile, encoding: .utf8)
                            context = try SMTPSubmissionTransport.makeTLSContext(
                                caFile: route.caFile, clientCertificatePEM: certificate, clientKeyPEM: SASLSecret(try RelaySecrets.read(key)))
                        } else {
                            context = try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile)
                        }
                    } catch let error as RelayStartupError {
                        throw error
                    } catch {
                        throw failure("cannot set up TLS (client certificate or ca_file)", error)
                    }
                }
                var settings = SMTPSubmissionTransport.Settings(
                    host: endpoint.host, port: endpoint.port, tls: tlsPolicy, tlsContext: context,
                    heloName: configuration.server.hostname, mailbox: nil)
                settings.bounceMailbox = bounceMailbox
                if route.mode == .directSend {
                    settings.acceptedDomains = route.effectiveAcceptedDomains
                }
                transports[route.name] = SMTPSubmissionTransport(settings: settings, credentials: StaticCredentialProvider(.none), group: group, logger: routeLogger)

            case .graph:
                guard let provider = try tokenProvider() else {
                    throw RelayStartupError("route \(route.name): a `graph` route needs tenant_id, client_id and a client secret or certificate")
                }
                var settings = GraphTransport.Settings(graphURL: route.graphURL, mailbox: route.mailbox, bounceMailbox: bounceMailbox, scope: route.scope)
                settings.largeMessages = route.largeMessages == .fallback ? .fallback : .uploadSession
                transports[route.name] = GraphTransport(
                    settings: settings, tokens: provider, httpClient: try httpClient(caFile: route.caFile, group: group), logger: routeLogger)
            }
        }
    }

    private var clientsByCAFile: [String: HTTPClient] = [:]

    /// One HTTP client per trust setting (a route's `ca_file`), shared by its routes.
    private mutating func httpClient(caFile: String?, group: any EventLoopGroup) throws -> HTTPClient {
        let key = caFile ?? ""
        if let client = clientsByCAFile[key] { return client }
        let client: HTTPClient
        do {
            client = try M365HTTPClient.make(caFile: caFile, group: group)
        } catch {
            throw RelayStartupError("ca_file \(caFile ?? "-"): cannot set up TLS: \(error)")
        }
        clientsByCAFile[key] = client
        httpClients.append(client)
        return client
    }

    /// Who sends a route's delivery status notifications: its `mailbox`, else
    /// `delivery.operator`, else the relay's postmaster (fine for the sandbox;
    /// a real tenant needs one of the first two).
    static func bounceSender(for route: RelayConfiguration.Route, in configuration: RelayConfiguration) -> String {
        route.mailbox ?? configuration.delivery.operatorAddress ?? "postmaster@\(configuration.server.hostname)"
    }
}
