import AsyncHTTPClient
import Foundation
import M365Sandbox
import NIOCore
import NIOPosix
import RelayTestSupport
import SMTPCore
@testable import M365Delivery

/// A sandbox with its HTTPS endpoint on loopback, and a client trusting its CA.
final class SandboxHarness: @unchecked Sendable {
    let directory: TemporaryDirectory
    let sandbox: M365Sandbox
    let client: HTTPClient
    let baseURL: String

    static let tenant = "sandbox.onmicrosoft.com"
    static let clientID = "6731de76-14a6-49ae-97bc-6eba6914391e"
    static let secret = "s3cr3t~value"

    init(_ configure: (inout M365SandboxConfiguration) throws -> Void = { _ in }) async throws {
        directory = TemporaryDirectory("m365-delivery-sandbox")
        var configuration = M365SandboxConfiguration(dataDirectory: directory.file("data"))
        configuration.apps = [.init(clientID: Self.clientID, secret: Self.secret)]
        try configure(&configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        sandbox = try M365Sandbox(configuration: configuration, smtp: ("127.0.0.1", 0), connector: nil, http: ("127.0.0.1", 0), group: group, logger: testLogger)
        try await sandbox.start()
        baseURL = sandbox.httpBaseURL ?? ""
        client = try M365HTTPClient.make(caFile: sandbox.caFile, group: group)
    }

    func tokenProvider(credential: M365TokenProvider.Credential = .secret(SASLSecret(SandboxHarness.secret)), clientID: String = SandboxHarness.clientID, tenant: String = SandboxHarness.tenant) throws -> M365TokenProvider {
        try M365TokenProvider(
            settings: .init(loginURL: baseURL, tenantID: tenant, clientID: clientID, credential: credential),
            httpClient: client, logger: testLogger)
    }

    func stop() async {
        try? await client.shutdown()
        await sandbox.shutdown()
    }
}

