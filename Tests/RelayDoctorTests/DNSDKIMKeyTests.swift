import Foundation
import RelayCore
@testable import RelayDoctor
import RelayTestSupport
import Testing

/// The public key doctor expects at `<selector>._domainkey.<domain>`, derived from the configured private key.
@Suite("DKIM published key")
struct DNSDKIMKeyTests {
    @Test("RSA: the SubjectPublicKeyInfo, published as DKIMSigningKey writes it")
    func rsa() throws {
        let key = try RelayDKIMPublishedKey(domain: "Contoso.com", selector: "relay2026", privateKeyPEM: TestRSAKeys.pem[0])
        #expect(key.domain == "contoso.com")
        #expect(key.algorithm == .rsa)
        #expect(key.publicKey.count == 294)
        #expect(key.recordName == "relay2026._domainkey.contoso.com")
        #expect(key.recordText == (try DKIMSigningKey(pemRepresentation: TestRSAKeys.pem[0])).dnsRecord)
        #expect(key.recordStrings.joined() == key.recordText)
        #expect(key.recordStrings.map(\.utf8.count) == [255, key.recordText.utf8.count - 255])
        #expect(key.matches(publishedBase64: key.publicKeyBase64))
        // Folded with spaces, as some DNS consoles show it.
        let base64 = key.publicKeyBase64
        #expect(key.matches(publishedBase64: String(base64.prefix(100)) + " \t" + String(base64.dropFirst(100))))
        // The bare PKCS#1 RSAPublicKey inside the SubjectPublicKeyInfo (after its 24-octet header) is the same key.
        #expect(key.matches(publishedBase64: Data(key.publicKey.dropFirst(24)).base64EncodedString()))
        let other = try RelayDKIMPublishedKey(domain: "contoso.com", selector: "relay2026", privateKeyPEM: TestRSAKeys.pem[1])
        #expect(!key.matches(publishedBase64: other.publicKeyBase64))
        #expect(!key.matches(publishedBase64: "not base64!"))
    }

    @Test("Ed25519: the 32 raw octets")
    func ed25519() throws {
        let key = try RelayDKIMPublishedKey(domain: "contoso.com", selector: "ed", privateKeyPEM: DNSFixtures.ed25519PEM)
        #expect(key.algorithm == .ed25519)
        #expect(key.publicKey.count == 32)
        #expect(key.recordText.hasPrefix("v=DKIM1; k=ed25519; p="))
        #expect(key.recordStrings.count == 1)
        #expect(key.zoneFileLine == "ed._domainkey.contoso.com. IN TXT \"\(key.recordText)\"")
    }

    @Test("An unreadable key is an error that shows nothing of the key")
    func unreadable() {
        #expect(throws: DKIMError.self) {
            try RelayDKIMPublishedKey(domain: "contoso.com", selector: "s", privateKeyPEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        }
    }
}
