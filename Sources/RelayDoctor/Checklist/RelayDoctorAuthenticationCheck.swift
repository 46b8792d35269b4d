import AsyncHTTPClient
import Foundation
import Logging
import M365Delivery
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import RelayCore
import RelayServer
import SMTPCore

/// Step Authentication, per `smtp` and `graph` route: a token from the
/// identity platform, then the credential where it is used: XOAUTH2 (or
/// basic AUTH) on the SMTP endpoint, or a Graph call for the mailbox.
/// Nothing is sent: SMTP stops after AUTH, the Graph call carries a message
/// Graph refuses to decode before it would send anything.
extension RelayDoctorRun {
    mutating func authenticationRows() async -> [RelayDoctorRow] {
        var rows: [RelayDoctorRow] = []
        var clients = RelayDoctorHTTPClients(group: group)
        for route in configuration.routes where route.mode == .smtp || route.mode == .graph {
            let step = RelayDoctorStep.authentication
            if let action = incompleteRoutes[route.name] {
                rows.append(skipped(step, "Credentials of route \(route.name)", because: action))
                continue
            }
            // The token, when the route has app credentials.
            var token: SASLSecret?
            var tokenAction: String?
            if route.doctorHasAppCredentials {
                let action = "Token for route \(route.name) from \(route.loginURL) (tenant \(route.tenantID ?? ""), app \(route.clientID ?? ""))"
                tokenAction = action
                if let login = route.doctorLoginEndpoint, let failed = unreachable[login] {
                    rows.append(skipped(step, action, because: failed))
                    authenticationFailures[route.name] = failed
                } else {
                    let (row, issued) = await tokenRow(route, action: action, clients: &clients)
                    rows.append(row)
                    token = issued
                    if issued == nil { authenticationFailures[route.name] = action }
                }
            } else if let source = route.token {
                do { token = SASLSecret(try RelaySecrets.read(source)) } catch {
                    let action = "Static token of route \(route.name) (\(source))"
                    rows.append(RelayDoctorRow(step: step, action: action, verification: error.description, result: .fail,
                                               hint: "Check that \(source) exists and the relay's user can read it"))
                    authenticationFailures[route.name] = action
                    tokenAction = action
                }
            }
            switch route.mode {
            case .smtp:
                rows.append(await smtpAuthenticationRow(route, token: token, tokenAction: tokenAction))
            case .graph:
                rows.append(await graphRow(route, token: token, tokenAction: tokenAction, clients: &clients))
            default:
                break
            }
        }
        await clients.shutdown()
        if rows.isEmpty {
            rows.append(RelayDoctorRow(step: RelayDoctorStep.authentication, action: "Credentials of the routes",
                                       verification: "no smtp or graph route: nothing authenticates to Microsoft 365", result: .info))
        }
        return rows
    }

    /// Asks the identity platform for a token with the route's credential.
    private func tokenRow(_ route: RelayConfiguration.Route, action: String, clients: inout RelayDoctorHTTPClients) async -> (RelayDoctorRow, SASLSecret?) {
        let step = RelayDoctorStep.authentication
        func failed(_ verification: String, _ hint: String) -> (RelayDoctorRow, SASLSecret?) {
            (RelayDoctorRow(step: step, action: action, verification: verification, result: .fail, hint: hint), nil)
        }
        let credential: M365TokenProvider.Credential
        do {
            if let secret = route.clientSecret {
                credential = .secret(SASLSecret(try RelaySecrets.read(secret)))
            } else if let certificateFile = route.clientCertificateFile, let key = route.clientKey {
                guard let certificate = try? String(contentsOfFile: certificateFile, encoding: .utf8) else {
                    return failed("cannot read client_certificate_file \(certificateFile)", "Check the path and that the relay's user can read it")
                }
                credential = .certificate(certificatePEM: certificate, privateKeyPEM: SASLSecret(try RelaySecrets.read(key)))
            } else {
                return failed("no client secret or certificate", "Give client_secret_file, or client_certificate_file and client_key_file")
            }
        } catch {
            return failed(error.description, "Check that the secret file exists and the relay's user can read it (or that the environment variable is set)")
        }
        let http: HTTPClient
        do { http = try clients.client(caFile: route.caFile, timeout: options.timeout) } catch {
            return failed("cannot use ca_file \(route.caFile ?? "-"): \(error)", "ca_file must be a PEM file of CA certificates")
        }
        let provider: M365TokenProvider
        do {
            var settings = M365TokenProvider.Settings(loginURL: route.loginURL, tenantID: route.tenantID ?? "", clientID: route.clientID ?? "", credential: credential)
            settings.requestTimeout = .milliseconds(Int64(options.timeout * 1000))
            provider = try M365TokenProvider(settings: settings, httpClient: http, logger: logger)
        } catch {
            return failed("the certificate or key cannot be used: \(error.failure.detail.isEmpty ? error.failure.error : error.failure.detail)",
                          "client_certificate_file must hold the app's certificate and client_key_file its RSA private key (PEM)")
        }
        let result: Result<M365AccessToken, M365TokenError>
        do { result = .success(try await provider.token(scope: route.effectiveScope)) } catch { result = .failure(error) }
        await provider.shutdown()
        do {
            let token = try result.get()
            let minutes = Int(token.expiresAt.timeIntervalSince(Date()) / 60)
            return (RelayDoctorRow(step: step, action: action, verification: "issued for \(route.effectiveScope); expires in \(minutes) min", result: .pass), token.value)
        } catch {
            let failure = error.failure
            let code = failure.code.map { "\($0): " } ?? ""
            let status = failure.status.map { "HTTP \($0) " } ?? ""
            let detail = failure.detail.isEmpty ? failure.error : failure.detail
            return failed("\(status)\(code)\(detail)", failure.meaning)
        }
    }

    /// EHLO, STARTTLS, AUTH as the route's mailbox, QUIT: proves the whole SMTP AUTH setup without sending.
    private func smtpAuthenticationRow(_ route: RelayConfiguration.Route, token: SASLSecret?, tokenAction: String?) async -> RelayDoctorRow {
        let step = RelayDoctorStep.authentication
        let endpoint = route.smtpEndpoint ?? RelayEndpoint(host: "smtp.office365.com", port: 587)
        let mailbox = configuration.doctorMailbox(of: route)
        let authentication: SMTPClientAuthentication
        let action: String
        if let username = route.username, let source = route.password {
            action = "AUTH LOGIN on \(endpoint) as \(username) (route \(route.name))"
            guard let password = try? RelaySecrets.read(source) else {
                return RelayDoctorRow(step: step, action: action, verification: "cannot read \(source)", result: .fail,
                                      hint: "Check that \(source) exists and the relay's user can read it")
            }
            authentication = .login(username: username, password: SASLSecret(password))
        } else if route.doctorHasAppCredentials || route.token != nil {
            action = "AUTH XOAUTH2 on \(endpoint) as \(mailbox ?? "the route's mailbox") (route \(route.name))"
            if let failed = authenticationFailures[route.name] { return skipped(step, action, because: failed) }
            guard let mailbox else {
                return RelayDoctorRow(step: step, action: action, verification: "no mailbox to authenticate as", result: .skip,
                                      hint: "Set routes[].mailbox (or a client's rewrite_sender) so that doctor knows which mailbox to log on to")
            }
            guard let token else { return skipped(step, action, because: tokenAction ?? "the token") }
            authentication = .xoauth2(username: mailbox, accessToken: token)
        } else {
            return RelayDoctorRow(step: step, action: "AUTH on \(endpoint) (route \(route.name))",
                                  verification: "the route sends without AUTH (loopback endpoint)", result: .info)
        }
        let probeEndpoint = RelayDoctorEndpoint(kind: .smtp, host: endpoint.host, port: endpoint.port, caFile: route.caFile, tls: route.tls != .none)
        if let failed = unreachable[probeEndpoint] { return skipped(step, action, because: failed) }

        let probe: RelayDoctorSMTPProbe
        do {
            probe = try await RelayDoctorSMTPProbe.open(host: endpoint.host, port: endpoint.port, heloName: configuration.server.hostname, timeout: options.timeout, group: group)
        } catch {
            return RelayDoctorRow(step: step, action: action, verification: error.description, result: .fail, hint: probeEndpoint.firewallHint)
        }
        let row = await authenticationDialogue(probe, route: route, authentication: authentication, action: action)
        await probe.quit()
        return row
    }

    private func authenticationDialogue(
        _ probe: RelayDoctorSMTPProbe, route: RelayConfiguration.Route, authentication: SMTPClientAuthentication, action: String
    ) async -> RelayDoctorRow {
        let step = RelayDoctorStep.authentication
        do {
            try await probe.ehlo()
            if route.tls != .none {
                let context = try SMTPSubmissionTransport.makeTLSContext(caFile: route.caFile)
                _ = try await probe.startTLS(context: context)
            }
            let reply = try await Self.authenticate(probe, authentication)
            if reply.code == 235 {
                return RelayDoctorRow(step: step, action: action, verification: "\(reply)", result: .pass)
            }
            let classification = M365ReplyClassification.classify(.smtp(reply), on: .smtp, canRefreshToken: false)
            return RelayDoctorRow(step: step, action: action, verification: "\(reply)", result: .fail,
                                  hint: classification.hint)
        } catch let error as RelayDoctorProbeError {
            if let reply = error.reply {
                let classification = M365ReplyClassification.classify(.smtp(reply), on: .smtp, canRefreshToken: false)
                return RelayDoctorRow(step: step, action: action, verification: error.description, result: .fail,
                                      hint: classification.hint)
            }
            return RelayDoctorRow(step: step, action: action, verification: error.description, result: .fail,
                                  hint: "The endpoint was reachable in the Connectivity step; retry, and check for a proxy that interferes with SMTP")
        } catch {
            return RelayDoctorRow(step: step, action: action, verification: "cannot set up TLS: \(error)", result: .fail,
                                  hint: "ca_file must be a PEM file of CA certificates")
        }
    }

    /// AUTH with one mechanism; returns the final reply (235 on success).
    static func authenticate(_ probe: RelayDoctorSMTPProbe, _ authentication: SMTPClientAuthentication) async throws(RelayDoctorProbeError) -> SMTPReply {
        switch authentication {
        case .xoauth2(let username, let token):
            let initial: SASLSecret
            do { initial = try SASLXOAuth2.initialResponse(SASLXOAuth2Credentials(username: username, accessToken: token)) } catch {
                throw RelayDoctorProbeError(stage: .auth, detail: "the mailbox or token cannot be encoded: \(error)")
            }
            var reply = try await probe.send(.auth(mechanism: SASLXOAuth2.mechanism, initialResponse: initial), stage: .auth)
            // A refused token comes as a 334 error challenge; the client answers empty to get the final reply.
            if reply.code == 334 { reply = try await probe.send(.authResponse(""), stage: .auth) }
            return reply
        case .login(let username, let password):
            var reply = try await probe.send(.auth(mechanism: SASLLogin.mechanism), stage: .auth)
            guard reply.code == 334 else { return reply }
            do {
                reply = try await probe.send(.authResponse(SASLSecret(try SASLLogin.usernameResponse(username))), stage: .auth)
                guard reply.code == 334 else { return reply }
                return try await probe.send(.authResponse(try SASLLogin.passwordResponse(password)), stage: .auth)
            } catch let error as RelayDoctorProbeError {
                throw error
            } catch {
                throw RelayDoctorProbeError(stage: .auth, detail: "the username or password cannot be encoded")
            }
        case .plain(let username, let password):
            let initial: SASLSecret
            do { initial = try SASLPlain.initialResponse(SASLPlainCredentials(username: username, password: password)) } catch {
                throw RelayDoctorProbeError(stage: .auth, detail: "the username or password cannot be encoded")
            }
            return try await probe.send(.auth(mechanism: SASLPlain.mechanism, initialResponse: initial), stage: .auth)
        }
    }

    /// A Graph `sendMail` for the mailbox with a body Graph cannot decode: the
    /// token and the app's right to the mailbox are checked before the body,
    /// so `400 ErrorMimeContentInvalidBase64String` proves them and sends nothing.
    private func graphRow(_ route: RelayConfiguration.Route, token: SASLSecret?, tokenAction: String?, clients: inout RelayDoctorHTTPClients) async -> RelayDoctorRow {
        let step = RelayDoctorStep.authentication
        let mailbox = configuration.doctorMailbox(of: route)
        let action = "Graph permission of route \(route.name) for \(mailbox ?? "the mailbox") (sendMail probe, nothing sent)"
        if let failed = authenticationFailures[route.name] { return skipped(step, action, because: failed) }
        if let graph = route.doctorGraphEndpoint, let failed = unreachable[graph] { return skipped(step, action, because: failed) }
        guard let mailbox else {
            return RelayDoctorRow(step: step, action: action, verification: "no mailbox to check", result: .skip,
                                  hint: "Set routes[].mailbox so that doctor knows which mailbox the app sends as")
        }
        guard let token else { return skipped(step, action, because: tokenAction ?? "the token") }
        let http: HTTPClient
        do { http = try clients.client(caFile: route.caFile, timeout: options.timeout) } catch {
            return RelayDoctorRow(step: step, action: action, verification: "cannot use ca_file: \(error)", result: .fail, hint: "ca_file must be a PEM file of CA certificates")
        }
        var base = route.graphURL
        while base.hasSuffix("/") { base.removeLast() }
        let user = mailbox.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? mailbox
        var request = HTTPClientRequest(url: "\(base)/v1.0/users/\(user)/sendMail")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token.unredacted)")
        request.headers.add(name: "Content-Type", value: "text/plain")
        request.body = .bytes(ByteBuffer(string: "m365-relay-doctor-probe!"))
        let status: Int
        let requestID: String?
        let json: [String: Any]?
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(options.timeout * 1000)))
            status = Int(response.status.code)
            requestID = response.headers.first(name: "request-id")
            let body = try await response.body.collect(upTo: 1024 * 1024)
            json = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
        } catch {
            return RelayDoctorRow(step: step, action: action, verification: RelayDoctorNetwork.describe(error), result: .fail,
                                  hint: "Graph was reachable in the Connectivity step; retry, and check for a proxy between this host and \(route.graphURL)")
        }
        let errorObject = json?["error"] as? [String: Any]
        let code = errorObject?["code"] as? String
        let idText = requestID.map { "; request-id \($0)" } ?? ""
        let found = "HTTP \(status)\(code.map { " \($0)" } ?? "")\(idText)"
        if (200..<300).contains(status) || (status == 400 && code?.caseInsensitiveCompare("ErrorMimeContentInvalidBase64String") == .orderedSame) {
            return RelayDoctorRow(step: step, action: action, verification: "token accepted for \(mailbox): \(found) to the undecodable probe, as expected", result: .pass)
        }
        let response = M365GraphResponse(status: status, errorCode: code, message: errorObject?["message"] as? String ?? "")
        let classification = M365ReplyClassification.classify(.graph(response), on: .graph, canRefreshToken: false)
        return RelayDoctorRow(step: step, action: action, verification: found, result: .fail,
                              hint: classification.hint)
    }
}

/// HTTP clients by trust setting, shut down when the step is done.
struct RelayDoctorHTTPClients {
    let group: any EventLoopGroup
    private var clients: [String: HTTPClient] = [:]

    init(group: any EventLoopGroup) { self.group = group }

    mutating func client(caFile: String?, timeout: TimeInterval) throws -> HTTPClient {
        if let client = clients[caFile ?? ""] { return client }
        let client = try M365HTTPClient.make(caFile: caFile, group: group, connectTimeout: .milliseconds(Int64(timeout * 1000)))
        clients[caFile ?? ""] = client
        return client
    }

    func shutdown() async {
        for client in clients.values {
            try? await client.shutdown()
        }
    }
}
