import AsyncHTTPClient
import Crypto
import Foundation
import RelayCore
import SMTPCore
import Testing
import X509
import _CryptoExtras
@testable import M365Delivery

struct M365ClientAssertionTests {
    @Test(arguments: [false, true])
    func assertionVerifiesWithTheCertificate(pkcs8: Bool) throws {
        let app = try TestAppCertificate()
        let credential = try M365CertificateCredential(
            certificatePEM: app.certificatePEM, privateKeyPEM: SASLSecret(pkcs8 ? app.pkcs8KeyPEM : app.pkcs1KeyPEM))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let audience = "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        let jwt = try M365ClientAssertion.make(credential: credential, clientID: "11111111-2222-3333-4444-555555555555", audience: audience, now: now).unredacted

        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        try #require(parts.count == 3)
        let headerBytes = try #require(M365Base64URL.decode(parts[0]))
        let claimBytes = try #require(M365Base64URL.decode(parts[1]))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any])
        let claims = try #require(try JSONSerialization.jsonObject(with: Data(claimBytes)) as? [String: Any])

        #expect(header["alg"] as? String == "RS256")
        #expect(header["typ"] as? String == "JWT")
        let thumbprint = M365Base64URL.encode(Array(SHA256.hash(data: app.der)))
        #expect(header["x5t#S256"] as? String == thumbprint)

        #expect(claims["aud"] as? String == audience)
        #expect(claims["iss"] as? String == "11111111-2222-3333-4444-555555555555")
        #expect(claims["sub"] as? String == "11111111-2222-3333-4444-555555555555")
        #expect((claims["jti"] as? String).flatMap(UUID.init(uuidString:)) != nil)
        #expect((claims["nbf"] as? NSNumber)?.intValue == 1_800_000_000)
        #expect((claims["iat"] as? NSNumber)?.intValue == 1_800_000_000)
        #expect((claims["exp"] as? NSNumber)?.intValue == 1_800_000_600)

        // RS256 = RSASSA-PKCS1-v1_5 with SHA-256, checked with the certificate's public key.
        let publicKey = try #require(_RSA.Signing.PublicKey(app.certificate.publicKey))
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(M365Base64URL.decode(parts[2])))
        let input = Array("\(parts[0]).\(parts[1])".utf8)
        #expect(publicKey.isValidSignature(signature, for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5))
        // And it fails for other bytes: the check can fail.
        #expect(!publicKey.isValidSignature(signature, for: SHA256.hash(data: input + [0]), padding: .insecurePKCS1v1_5))
    }

    @Test func eachAssertionHasItsOwnID() throws {
        let app = try TestAppCertificate()
        let credential = try M365CertificateCredential(certificatePEM: app.certificatePEM, privateKeyPEM: SASLSecret(app.pkcs8KeyPEM))
        let a = try M365ClientAssertion.make(credential: credential, clientID: "c", audience: "a", now: Date())
        let b = try M365ClientAssertion.make(credential: credential, clientID: "c", audience: "a", now: Date())
        #expect(a != b)
        #expect("\(a)" == "<redacted>")
    }

    @Test func keyOfAnotherCertificateIsRefused() throws {
        let one = try TestAppCertificate(), two = try TestAppCertificate(keyIndex: 1)
        #expect(throws: M365TokenError.self) {
            try M365CertificateCredential(certificatePEM: one.certificatePEM, privateKeyPEM: SASLSecret(two.pkcs8KeyPEM))
        }
        #expect(throws: M365TokenError.self) {
            try M365CertificateCredential(certificatePEM: "not a certificate", privateKeyPEM: SASLSecret(two.pkcs8KeyPEM))
        }
    }
}

struct M365TokenFailureParsingTests {
    @Test(arguments: [
        ("AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0a\r\nCorrelation ID: 0b\r\nTimestamp: 2026-01-01 00:00:00Z",
         "AADSTS7000215", "AADSTS7000215: Invalid client secret provided."),
        ("AADSTS700016: Application with identifier 'x' was not found. Trace ID: 1 Correlation ID: 2 Timestamp: 3",
         "AADSTS700016", "AADSTS700016: Application with identifier 'x' was not found."),
        ("Something else", nil, "Something else"),
    ] as [(String, String?, String)])
    func microsoftErrorsAreParsed(_ description: String, _ code: String?, _ detail: String) {
        let failure = M365TokenProvider.failure(status: 401, error: "invalid_client", description: description)
        #expect(failure.code == code)
        #expect(failure.detail == detail)
        #expect(failure.status == 401)
        #expect(failure.error == "invalid_client")
    }

    @Test func errorDescriptionsHideTheSecret() {
        let error = M365TokenError(.refused, failure: M365TokenProvider.failure(status: 401, error: "invalid_client", description: "AADSTS7000215: Invalid client secret provided."))
        #expect(error.description.contains("AADSTS7000215"))
        #expect(error.description.contains("Invalid client secret"))
        let token = M365AccessToken(value: "eyJ0eXAi-secret", scope: "s", issuedAt: Date(), expiresAt: Date())
        #expect(!"\(token)".contains("secret"))
        #expect(!String(reflecting: token).contains("eyJ0"))
        let credential = M365TokenProvider.Credential.secret("hunter2")
        #expect(!"\(credential)".contains("hunter2"))
    }

    @Test func formEncoding() {
        #expect(M365TokenProvider.formEncode([("scope", "https://x/.default"), ("a b", "c&d=e+f")]) == "scope=https%3A%2F%2Fx%2F.default&a%20b=c%26d%3De%2Bf")
    }

    @Test func refreshPointHonoursTheMarginOrHalfTheLifetime() throws {
        let settings = M365TokenProvider.Settings(tenantID: "t", clientID: "c", credential: .secret("s"))
        let client = HTTPClient.shared
        let provider = try M365TokenProvider(settings: settings, httpClient: client, logger: testLogger)
        let issued = Date(timeIntervalSince1970: 1000)
        let hour = M365AccessToken(value: "x", scope: "s", issuedAt: issued, expiresAt: issued.addingTimeInterval(3599))
        #expect(provider.refreshPoint(of: hour) == issued.addingTimeInterval(2999))
        let short = M365AccessToken(value: "x", scope: "s", issuedAt: issued, expiresAt: issued.addingTimeInterval(4))
        #expect(provider.refreshPoint(of: short) == issued.addingTimeInterval(2))
        #expect(settings.tokenEndpoint == "https://login.microsoftonline.com/t/oauth2/v2.0/token")
    }
}
