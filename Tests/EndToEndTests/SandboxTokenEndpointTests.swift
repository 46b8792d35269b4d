import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import M365Sandbox
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import NIOSSL
import RelayTestSupport
import SwiftASN1
import Testing
import X509
import _CryptoExtras

// The sandbox's identity platform (`POST /{tenant}/oauth2/v2.0/token`),
// seen through AsyncHTTPClient trusting only the sandbox CA, against
// ../shared/M365.md: secret and certificate grants, Entra ID's AADSTS
// errors, and the SMTP endpoint accepting the tokens it issued.

/// A sandbox with every endpoint on 127.0.0.1 (port 0) and an HTTPS client that trusts its CA.
final class SandboxHTTPEndpoint: @unchecked Sendable {
    let directory: TemporaryDirectory
    let sandbox: M365Sandbox
    let client: HTTPClient
    let base: String

    private init(directory: TemporaryDirectory, sandbox: M365Sandbox, client: HTTPClient) {
        self.directory = directory
        self.sandbox = sandbox
        self.client = client
        base = sandbox.httpBaseURL ?? ""
    }

    var tokenURL: String { "\(base)/\(sandbox.configuration.tenantID)/oauth2/v2.0/token" }

    /// Starts a sandbox (SMTP, MX and HTTPS), runs `body`, and shuts everything down whatever happens.
    static func with(
        _ configure: (inout M365SandboxConfiguration) throws -> Void,
        _ body: (SandboxHTTPEndpoint) async throws -> Void
    ) async throws {
        let directory = TemporaryDirectory("sandbox-http")
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("sandbox"))
        configuration.hostname = SandboxSubmissionEndpoint.hostname
        try configure(&configuration)
        var logger = Logger(label: "sandbox")
        logger.logLevel = .warning
        let sandbox = try M365Sandbox(
            configuration: configuration, smtp: ("127.0.0.1", 0), connector: ("127.0.0.1", 0), http: ("127.0.0.1", 0),
            group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        try await sandbox.start()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(sandbox.caFile)
        var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        clientConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let endpoint = SandboxHTTPEndpoint(directory: directory, sandbox: sandbox, client: client)
        do {
            try await body(endpoint)
        } catch {
            try? await client.shutdown()
            await sandbox.shutdown()
            throw error
        }
        try? await client.shutdown()
        await sandbox.shutdown()
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        /// Graph's `error.code`.
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One HTTPS request.
    func request(_ method: HTTPMethod, _ url: String, headers: [String: String] = [:], body: Data? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url.hasPrefix("https://") ? url : base + url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
        var fields: [String: String] = [:]
        for header in response.headers { fields[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), headers: fields, body: Data(buffer: bytes))
    }

    /// A token request with these form fields.
    func token(_ fields: [String: String], tenant: String? = nil) async throws -> Reply {
        let url = tenant.map { "\(base)/\($0)/oauth2/v2.0/token" } ?? tokenURL
        let form = fields.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }
            .joined(separator: "&")
        return try await request(.POST, url, headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Data(form.utf8))
    }

    /// An access token from the client secret grant, or a failed expectation.
    func accessToken(clientID: String = SandboxApps.clientID, secret: String = SandboxApps.secret, scope: String) async throws -> String {
        let reply = try await token(["grant_type": "client_credentials", "client_id": clientID, "client_secret": secret, "scope": scope])
        let token = reply.json["access_token"] as? String
        #expect(reply.status == 200 && token != nil, "token request: \(reply.status) \(reply.text)")
        return token ?? ""
    }

    /// Runs `script` after the submission tests' python prelude against the SMTP endpoint; decodes its last line.
    func python<Result: Decodable>(_ script: String, _ arguments: [String: Any] = [:], port: Int? = nil, as: Result.Type) async throws -> Result {
        var arguments = arguments
        arguments["port"] = port ?? sandbox.ports.smtp
        arguments["cafile"] = sandbox.caFile
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let run = try await ExternalProcess.python(sandboxPythonPrelude + script, [json], timeout: 60)
        guard run.status == 0, let line = run.stdout.split(separator: "\n").last else {
            Issue.record("python failed (\(run.status)); stdout: \(run.stdout); stderr: \(run.stderr)")
            throw CocoaError(.executableLoad)
        }
        do {
            return try JSONDecoder().decode(Result.self, from: Data(line.utf8))
        } catch {
            Issue.record("python printed \(line); stderr: \(run.stderr)")
            throw error
        }
    }
}

/// The apps, mailboxes and certificates the HTTP tests use.
enum SandboxApps {
    static let clientID = "11111111-2222-3333-4444-555555555555"
    static let secret = "s3cret~value"
    static let certificateClientID = "66666666-7777-8888-9999-000000000000"
    static let limitedClientID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    static let outlookScope = "https://outlook.office365.com/.default"
    static let graphScope = "https://graph.microsoft.com/.default"

    /// An RSA key and a self-signed certificate, as an admin uploads to the app registration.
    struct SigningCertificate: Sendable {
        var key: _RSA.Signing.PrivateKey
        var certificate: Certificate
        var pem: String
        var der: [UInt8]
    }

    static let signing: SigningCertificate = makeSigningCertificate(name: "relay app", keyIndex: 0)
    static let otherSigning: SigningCertificate = makeSigningCertificate(name: "someone else", keyIndex: 3)

    static func makeSigningCertificate(name: String, keyIndex: Int) -> SigningCertificate {
        let key = try! _RSA.Signing.PrivateKey(pemRepresentation: TestRSAKeys.pem[keyIndex])
        let subject = try! DistinguishedName { CommonName(name) }
        let certificate = try! Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86_400),
            issuer: subject, subject: subject, signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions(), issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try! serializer.serialize(certificate)
        return SigningCertificate(key: key, certificate: certificate, pem: try! certificate.serializeAsPEM().pemString, der: serializer.serializedBytes)
    }

    /// One app with a secret for every mailbox, one with a certificate, one limited to bob.
    static func configure(_ configuration: inout M365SandboxConfiguration) {
        configuration.mailboxes = [
            .init(address: "alice@contoso.com", sendAs: ["info@contoso.com"]),
            .init(address: "bob@contoso.com"),
        ]
        configuration.apps = [
            .init(clientID: clientID, secret: secret, mailboxes: ["*"]),
            .init(clientID: certificateClientID, certificatePEM: signing.pem, mailboxes: ["*"]),
            .init(clientID: limitedClientID, secret: secret, mailboxes: ["bob@contoso.com"]),
            .init(clientID: "expired-app", secret: secret, secretExpires: Date().addingTimeInterval(-60), mailboxes: ["*"]),
        ]
    }

    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// A client assertion (RFC 7523) signed RS256 with `signer`'s key, naming `thumbprintOf`'s certificate.
    static func assertion(
        audience: String, clientID: String = certificateClientID, signer: SigningCertificate = signing, thumbprintOf: SigningCertificate = signing,
        legacyThumbprint: Bool = false, notBefore: Date = Date(), expires: Date = Date().addingTimeInterval(600)
    ) throws -> String {
        let header: [String: Any] = legacyThumbprint
            ? ["alg": "RS256", "typ": "JWT", "x5t": base64URL(Insecure.SHA1.hash(data: thumbprintOf.der))]
            : ["alg": "RS256", "typ": "JWT", "x5t#S256": base64URL(SHA256.hash(data: thumbprintOf.der))]
        let claims: [String: Any] = [
            "aud": audience, "iss": clientID, "sub": clientID, "jti": UUID().uuidString,
            "nbf": Int(notBefore.timeIntervalSince1970), "exp": Int(expires.timeIntervalSince1970),
        ]
        let input = base64URL(try JSONSerialization.data(withJSONObject: header)) + "." + base64URL(try JSONSerialization.data(withJSONObject: claims))
        let signature = try signer.key.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5)
        return input + "." + base64URL(signature.rawRepresentation)
    }
}

@Suite("Sandbox token endpoint, seen by AsyncHTTPClient")
struct SandboxTokenEndpointTests {
    /// The client secret grant for both scopes: Bearer, `expires_in` as configured, opaque tokens, counted.
    @Test func secretGrantIssuesTokensForOutlookAndGraph() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.tokenLifetime = 1234 }) { endpoint in
            for scope in [SandboxApps.outlookScope, SandboxApps.graphScope, "\(endpoint.base)/.default"] {
                let reply = try await endpoint.token([
                    "grant_type": "client_credentials", "client_id": SandboxApps.clientID, "client_secret": SandboxApps.secret, "scope": scope,
                ])
                #expect(reply.status == 200, "\(scope): \(reply.text)")
                #expect(reply.json["token_type"] as? String == "Bearer")
                #expect(reply.json["expires_in"] as? Int == 1234)
                #expect(reply.json["ext_expires_in"] as? Int == 1234)
                #expect((reply.json["access_token"] as? String)?.count ?? 0 >= 32)
                #expect(reply.headers["content-type"]?.hasPrefix("application/json") == true)
            }
            #expect(endpoint.sandbox.stats.tokensIssued == 3)
            // The tenant's directory id works in place of its name.
            let byGUID = try await endpoint.token([
                "grant_type": "client_credentials", "client_id": SandboxApps.clientID, "client_secret": SandboxApps.secret, "scope": SandboxApps.graphScope,
            ], tenant: endpoint.sandbox.configuration.tenantGUID)
            #expect(byGUID.status == 200, "\(byGUID.text)")
        }
    }

    /// (client id, secret, scope, tenant, expected status, error, AADSTS code)
    private static let errorCases: [(String, String?, String, String?, Int, String, Int)] = [
        (SandboxApps.clientID, "wrong", SandboxApps.outlookScope, nil, 401, "invalid_client", 7000215),
        ("expired-app", SandboxApps.secret, SandboxApps.outlookScope, nil, 401, "invalid_client", 7000222),
        ("99999999-0000-0000-0000-000000000000", SandboxApps.secret, SandboxApps.outlookScope, nil, 400, "unauthorized_client", 700016),
        (SandboxApps.clientID, SandboxApps.secret, "https://outlook.office365.com/SMTP.Send", nil, 400, "invalid_scope", 70011),
        (SandboxApps.clientID, SandboxApps.secret, "https://example.com/.default", nil, 400, "invalid_scope", 70011),
        (SandboxApps.clientID, SandboxApps.secret, SandboxApps.outlookScope, "fabrikam.onmicrosoft.com", 400, "invalid_request", 90002),
        (SandboxApps.clientID, nil, SandboxApps.outlookScope, nil, 401, "invalid_client", 7000218),
    ]

    /// Each failure as Entra ID answers it: status, `error`, `error_codes`, AADSTS in the description, trace ids.
    @Test func secretGrantErrorsAreEntraIDs() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            for (clientID, secret, scope, tenant, status, error, code) in Self.errorCases {
                var fields = ["grant_type": "client_credentials", "client_id": clientID, "scope": scope]
                fields["client_secret"] = secret
                let reply = try await endpoint.token(fields, tenant: tenant)
                let label = "\(clientID) \(scope) \(tenant ?? "-")"
                #expect(reply.status == status, "\(label): \(reply.text)")
                #expect(reply.json["error"] as? String == error, "\(label): \(reply.text)")
                #expect(reply.json["error_codes"] as? [Int] == [code], "\(label): \(reply.text)")
                #expect((reply.json["error_description"] as? String)?.hasPrefix("AADSTS\(code): ") == true, "\(label): \(reply.text)")
                #expect(reply.json["trace_id"] is String && reply.json["correlation_id"] is String && reply.json["timestamp"] is String)
                #expect(reply.json["access_token"] == nil)
            }
            // The secret never appears in a reply.
            #expect(endpoint.sandbox.stats.tokensIssued == 0)
        }
    }

    /// A JWT client assertion signed with the registered certificate's key: `x5t#S256` and legacy `x5t`.
    @Test func certificateAssertionGrantIssuesTokens() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            for legacy in [false, true] {
                let assertion = try SandboxApps.assertion(audience: endpoint.tokenURL, legacyThumbprint: legacy)
                let reply = try await endpoint.token([
                    "grant_type": "client_credentials", "client_id": SandboxApps.certificateClientID, "scope": SandboxApps.graphScope,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
                ])
                #expect(reply.status == 200, "legacy x5t \(legacy): \(reply.text)")
                #expect(reply.json["access_token"] is String)
            }
        }
    }

    /// Bad signatures, unknown thumbprints, claims out of time or for another audience.
    @Test func certificateAssertionErrors() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let url = endpoint.tokenURL
            let cases: [(String, String, Int, Int)] = [
                ("signed by another key", try SandboxApps.assertion(audience: url, signer: SandboxApps.otherSigning), 401, 700027),
                ("unregistered thumbprint", try SandboxApps.assertion(audience: url, signer: SandboxApps.otherSigning, thumbprintOf: SandboxApps.otherSigning), 401, 700027),
                ("other audience", try SandboxApps.assertion(audience: "https://login.microsoftonline.com/other/oauth2/v2.0/token"), 401, 700027),
                ("other issuer", try SandboxApps.assertion(audience: url, clientID: SandboxApps.clientID), 401, 700027),
                ("expired", try SandboxApps.assertion(audience: url, notBefore: Date().addingTimeInterval(-3600), expires: Date().addingTimeInterval(-400)), 401, 700024),
                ("not yet valid", try SandboxApps.assertion(audience: url, notBefore: Date().addingTimeInterval(400), expires: Date().addingTimeInterval(1000)), 401, 700024),
            ]
            for (label, assertion, status, code) in cases {
                let reply = try await endpoint.token([
                    "grant_type": "client_credentials", "client_id": SandboxApps.certificateClientID, "scope": SandboxApps.outlookScope,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
                ])
                #expect(reply.status == status, "\(label): \(reply.text)")
                #expect(reply.json["error_codes"] as? [Int] == [code], "\(label): \(reply.text)")
            }
            // Within the five minutes of clock skew Entra ID allows, an assertion is still good.
            let skewed = try SandboxApps.assertion(audience: url, notBefore: Date().addingTimeInterval(120), expires: Date().addingTimeInterval(600))
            let reply = try await endpoint.token([
                "grant_type": "client_credentials", "client_id": SandboxApps.certificateClientID, "scope": SandboxApps.outlookScope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": skewed,
            ])
            #expect(reply.status == 200, "\(reply.text)")
        }
    }

    private struct AuthResults: Decodable {
        var results: [SandboxReply]
    }

    private static let xoauth2Script = #"""
        results = []
        for case in args["cases"]:
            s = secure()
            r = xoauth2(s, case["user"], case["token"])
            if r["code"] == 235:
                s.mail(case["user"])
                s.rcpt("someone@fabrikam.com")
                r = data(s, ("From: %s\r\nTo: someone@fabrikam.com\r\nSubject: t\r\n\r\nbody\r\n" % case["user"]).encode())
            close(s)
            results.append(r)
        done({"results": results})
        """#

    /// SMTP AUTH takes the tokens the sandbox issued for the Outlook scope, for the mailboxes the app may send as.
    @Test func submissionAcceptsIssuedOutlookTokens() async throws {
        try await SandboxHTTPEndpoint.with(SandboxApps.configure) { endpoint in
            let outlook = try await endpoint.accessToken(scope: SandboxApps.outlookScope)
            let graph = try await endpoint.accessToken(scope: SandboxApps.graphScope)
            let limited = try await endpoint.accessToken(clientID: SandboxApps.limitedClientID, scope: SandboxApps.outlookScope)
            let cases: [(String, String, String)] = [
                ("alice@contoso.com", outlook, "250 2.0.0"),
                ("anyone@contoso.com", outlook, "250 2.0.0"),
                ("alice@contoso.com", graph, "535 5.7.3"),
                ("alice@contoso.com", limited, "535 5.7.3"),
                ("bob@contoso.com", limited, "250 2.0.0"),
                ("alice@contoso.com", "not-a-token", "535 5.7.3"),
            ]
            let result = try await endpoint.python(Self.xoauth2Script, ["cases": cases.map { ["user": $0.0, "token": $0.1] }], as: AuthResults.self)
            for (index, expected) in cases.enumerated() {
                #expect(result.results[index].status == expected.2, "\(expected.0): \(result.results[index])")
            }
            #expect(try endpoint.sandbox.mailStore.messages().map(\.via) == ["smtp", "smtp", "smtp"])
        }
    }

    /// An issued token past its expiry: `535 5.7.3`.
    @Test func expiredIssuedTokenIsRefused() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.tokenLifetime = 1 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.outlookScope)
            try await Task.sleep(for: .milliseconds(1300))
            let result = try await endpoint.python(Self.xoauth2Script, ["cases": [["user": "alice@contoso.com", "token": token]]], as: AuthResults.self)
            #expect(result.results.first?.status == "535 5.7.3", "\(result.results)")
            #expect(result.results.first?.text == "5.7.3 Authentication unsuccessful")
        }
    }

    /// With HVE's minimum lifetime, a token with less left is `501 5.5.127 ... Token will expire soon`.
    @Test func tokenCloseToExpiryIsRefusedWithMinimumLifetime() async throws {
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.tokenLifetime = 300; $0.minimumTokenLifetime = 600 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.outlookScope)
            let result = try await endpoint.python(Self.xoauth2Script, ["cases": [["user": "alice@contoso.com", "token": token]]], as: AuthResults.self)
            #expect(result.results.first?.status == "501 5.5.127", "\(result.results)")
            #expect(result.results.first?.text.contains("Token will expire soon") == true)
        }
        try await SandboxHTTPEndpoint.with({ SandboxApps.configure(&$0); $0.minimumTokenLifetime = 600 }) { endpoint in
            let token = try await endpoint.accessToken(scope: SandboxApps.outlookScope)
            let result = try await endpoint.python(Self.xoauth2Script, ["cases": [["user": "alice@contoso.com", "token": token]]], as: AuthResults.self)
            #expect(result.results.first?.status == "250 2.0.0", "\(result.results)")
        }
    }
}
