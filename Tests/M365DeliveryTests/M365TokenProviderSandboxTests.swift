import Foundation
import M365Sandbox
import NIOPosix
import RelayCore
import RelayTestSupport
import SMTPCore
import Testing
@testable import M365Delivery

/// The token provider against the sandbox's token endpoint, over HTTPS on loopback.
@Suite(.timeLimit(.minutes(5)))
struct M365TokenProviderSandboxTests {
    @Test func secretGrantIssuesAndCaches() async throws {
        let harness = try await SandboxHarness()
        let provider = try harness.tokenProvider()
        let token = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        #expect(!token.value.isEmpty)
        #expect(token.expiresAt.timeIntervalSince(token.issuedAt) > 3000)
        let again = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        #expect(again == token)
        #expect(harness.sandbox.stats.tokensIssued == 1)
        // Another scope is another token.
        _ = try await provider.token(scope: harness.baseURL + "/.default")
        #expect(harness.sandbox.stats.tokensIssued == 2)
        await provider.shutdown()
        await harness.stop()
    }

    @Test(arguments: [false, true])
    func certificateGrant(pkcs8: Bool) async throws {
        let app = try TestAppCertificate()
        let harness = try await SandboxHarness { configuration in
            configuration.apps = [.init(clientID: SandboxHarness.clientID, certificatePEM: app.certificatePEM)]
        }
        let provider = try harness.tokenProvider(credential: .certificate(certificatePEM: app.certificatePEM, privateKeyPEM: SASLSecret(pkcs8 ? app.pkcs8KeyPEM : app.pkcs1KeyPEM)))
        let token = try await provider.token(scope: harness.baseURL + "/.default")
        #expect(!token.value.isEmpty)
        #expect(harness.sandbox.stats.tokensIssued == 1)
        await provider.shutdown()
        await harness.stop()
    }

    @Test func certificateNotRegisteredIsRefusedWithMeaning() async throws {
        let registered = try TestAppCertificate(), other = try TestAppCertificate(keyIndex: 1)
        let harness = try await SandboxHarness { configuration in
            configuration.apps = [.init(clientID: SandboxHarness.clientID, certificatePEM: registered.certificatePEM)]
        }
        let provider = try harness.tokenProvider(credential: .certificate(certificatePEM: other.certificatePEM, privateKeyPEM: SASLSecret(other.pkcs8KeyPEM)))
        do {
            _ = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
            Issue.record("a certificate the app does not know must be refused")
        } catch {
            #expect(error.failure.code == "AADSTS700027")
            #expect(error.failure.status == 401)
            #expect(M365ReplyClassification.classify(.tokenRefused(error.failure), on: .smtp).action == .pauseRoute)
        }
        await harness.stop()
    }

    @Test func singleFlight() async throws {
        let harness = try await SandboxHarness()
        let provider = try harness.tokenProvider()
        let tokens = try await withThrowingTaskGroup(of: M365AccessToken.self) { group in
            for _ in 0..<20 {
                group.addTask { try await provider.token(scope: OAuthCredentialProvider.outlookScope) }
            }
            return try await group.reduce(into: [M365AccessToken]()) { $0.append($1) }
        }
        #expect(tokens.count == 20)
        #expect(Set(tokens.map(\.value)).count == 1)
        #expect(harness.sandbox.stats.tokensIssued == 1)
        #expect(await provider.requestCount == 1)
        await provider.shutdown()
        await harness.stop()
    }

    @Test func refreshesInTheBackgroundBeforeExpiry() async throws {
        // A 10-second token is refreshed at half its life (5 s) with no caller
        // asking: nobody calls `token` until the sandbox has issued a second one.
        let harness = try await SandboxHarness { $0.tokenLifetime = 10 }
        let provider = try harness.tokenProvider()
        let first = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        #expect(harness.sandbox.stats.tokensIssued == 1)
        let sandbox = harness.sandbox
        #expect(await eventually(timeout: 60) { sandbox.stats.tokensIssued >= 2 }, "no refresh in the background")
        let asked = Date()
        let second = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        #expect(second.value != first.value)
        #expect(second.expiresAt > first.expiresAt)
        // Whatever refresh was under way, what is handed out is valid for a while yet.
        #expect(second.expiresAt > asked.addingTimeInterval(2))
        await provider.shutdown()
        await harness.stop()
    }

    @Test func invalidateFetchesANewToken() async throws {
        let harness = try await SandboxHarness()
        let provider = try harness.tokenProvider()
        let first = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        // A stale refusal (another token) changes nothing.
        await provider.invalidate(scope: OAuthCredentialProvider.outlookScope, token: "some-older-token")
        #expect(try await provider.token(scope: OAuthCredentialProvider.outlookScope) == first)
        await provider.invalidate(scope: OAuthCredentialProvider.outlookScope, token: first.value)
        let second = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
        #expect(second.value != first.value)
        #expect(harness.sandbox.stats.tokensIssued == 2)
        await provider.shutdown()
        await harness.stop()
    }

    @Test(arguments: [
        ("wrong-secret", SandboxHarness.clientID, SandboxHarness.tenant, "AADSTS7000215", "Invalid client secret"),
        (SandboxHarness.secret, "00000000-0000-0000-0000-000000000000", SandboxHarness.tenant, "AADSTS700016", "was not found in the tenant"),
        (SandboxHarness.secret, SandboxHarness.clientID, "nosuchtenant.onmicrosoft.com", "AADSTS90002", "tenant was not found"),
    ])
    func identityPlatformErrorsAreSurfaced(secret: String, clientID: String, tenant: String, code: String, meaning: String) async throws {
        let harness = try await SandboxHarness()
        let provider = try harness.tokenProvider(credential: .secret(SASLSecret(secret)), clientID: clientID, tenant: tenant)
        do {
            _ = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
            Issue.record("expected \(code)")
        } catch {
            #expect(error.code == .refused)
            #expect(error.failure.code == code)
            #expect(error.failure.meaning.contains(meaning))
            #expect(error.description.contains(code))
            #expect(!error.failure.detail.contains("Trace ID"))
            #expect(!error.description.contains(secret) || secret == SandboxHarness.secret && !error.debugDescription.contains(secret))
        }
        #expect(harness.sandbox.stats.tokensIssued == 0)
        await harness.stop()
    }

    @Test func unreachableEndpointIsTransient() async throws {
        // AsyncHTTPClient retries refused connections until its connect timeout: keep it short here.
        let client = try M365HTTPClient.make(caFile: nil, group: MultiThreadedEventLoopGroup.singleton, connectTimeout: .milliseconds(500))
        let provider = try M365TokenProvider(
            settings: .init(loginURL: "https://127.0.0.1:1", tenantID: SandboxHarness.tenant, clientID: SandboxHarness.clientID, credential: .secret("x")),
            httpClient: client, logger: testLogger)
        do {
            _ = try await provider.token(scope: OAuthCredentialProvider.outlookScope)
            Issue.record("nothing listens on port 1")
        } catch {
            #expect(error.code == .unreachable)
            #expect(error.failure.status == nil)
            #expect(error.connectionFailure != nil)
            #expect(M365ReplyClassification.classify(.tokenRefused(error.failure), on: .smtp).action == .retry(retryAfter: nil))
        }
        try await client.shutdown()
    }
}
