import Crypto
import Foundation
import M365Sandbox
import RelayCore
import RelayServer
import RelayTestSupport
import Testing
import _CryptoExtras

@Suite("End to end: DKIM signing, verified by dkimpy against a test DNS server")
struct DKIMEndToEndTests {
    static let message: [UInt8] = Array([
        "From: Scanner <scanner@contoso.com>",
        "To: someone@example.com",
        "Subject: Scan from\r\n the second floor",
        "Date: Mon, 1 Jun 2026 10:00:00 +0000",
        "Message-ID: <scan-0001@scanner.contoso.local>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        ".a line that begins with a dot",
        "trailing spaces   ",
        "",
        "last line",
    ].map { $0 + "\r\n" }.joined().utf8)

    /// Test keys, written as PEM files the way an administrator would.
    struct Keys {
        let rsaFile: String
        let ed25519File: String
        let records: [String: String]

        init(_ directory: TemporaryDirectory) throws {
            let rsa = try _RSA.Signing.PrivateKey(pemRepresentation: TestRSAKeys.pem[2])
            let ed = Curve25519.Signing.PrivateKey()
            rsaFile = try directory.write("dkim-rsa.key", rsa.pemRepresentation)
            ed25519File = try directory.write("dkim-ed.key", ed.pemRepresentation)
            records = [
                "relay2026._domainkey.contoso.com": try DKIMSigningKey(rsa: rsa).dnsRecord,
                "ed2026._domainkey.contoso.com": DKIMSigningKey(ed25519: ed).dnsRecord,
            ]
        }
    }

    static func yaml(_ directory: TemporaryDirectory, keys: Keys) -> String {
        RelayHarness.sandboxYAML(directory) + """

        dkim:
          - domain: contoso.com
            selector: relay2026
            private_key_file: \(keys.rsaFile)
          - domain: contoso.com
            selector: ed2026
            private_key_file: \(keys.ed25519File)
        """
    }

    @Test func deliveredMessageVerifiesWithDkimpy() async throws {
        var keys: Keys?
        let relay = try await RelayHarness { directory in
            keys = try Keys(directory)
            return Self.yaml(directory, keys: keys!)
        }
        let result = try await sendWithPython(port: relay.port, from: "scanner@contoso.com", to: ["someone@example.com"], content: Self.message)
        #expect(result["ok"] as? Bool == true, "\(result)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 }, "the sandbox never got the message")
        let stored = try store.content(of: try #require(try store.messages().first))
        try await relay.stop()

        let text = String(decoding: stored, as: UTF8.self)
        #expect(text.hasPrefix("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=contoso.com;"), "\(text.prefix(400))")
        let verification = try await DKIMVerification.verify(Array(stored), records: try #require(keys).records)
        #expect(verification.signatures.map(\.selector) == ["relay2026", "ed2026"])
        #expect(verification.allVerified, "dkimpy: \(verification.signatures) \(verification.log)")

        // The same stored message with one body octet changed no longer verifies.
        let tampered = Array(text.replacingOccurrences(of: "last line", with: "last lime").utf8)
        let refused = try await DKIMVerification.verify(tampered, records: try #require(keys).records)
        #expect(refused.signatures.count == 2)
        #expect(refused.signatures.allSatisfy { !$0.verified })
    }

    @Test func mailOfADomainWithoutKeyLeavesUnsigned() async throws {
        let relay = try await RelayHarness { directory in Self.yaml(directory, keys: try Keys(directory)) }
        let content = Array(String(decoding: Self.message, as: UTF8.self).replacingOccurrences(of: "scanner@contoso.com", with: "app@fabrikam.com").utf8)
        let result = try await sendWithPython(port: relay.port, from: "app@fabrikam.com", to: ["someone@example.com"], content: content)
        #expect(result["ok"] as? Bool == true, "\(result)")
        let store = relay.sandbox.mailStore
        #expect(try await eventually { try store.messages().count == 1 })
        let stored = String(decoding: try store.content(of: try #require(try store.messages().first)), as: UTF8.self)
        try await relay.stop()
        #expect(!stored.contains("DKIM-Signature"))
        #expect(stored.hasSuffix(String(decoding: content, as: UTF8.self)))
    }

    @Test func unusableKeyFileStopsTheStartNamingTheFile() async throws {
        let directory = TemporaryDirectory("dkim-bad-key")
        let small = try directory.write("small.key", try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)).pemRepresentation)
        let garbage = try directory.write("garbage.key", "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
        let missing = directory.file("missing.key")
        for (file, reason) in [(small, "1024 bits"), (garbage, "not an RSA"), (missing, "cannot read")] {
            let yaml = RelayHarness.sandboxYAML(directory) + """

            dkim:
              - domain: contoso.com
                selector: s1
                private_key_file: \(file)
            """
            let configuration = try RelayConfiguration.parse(yaml: yaml, fileName: "test.yaml")
            do {
                let application = try await RelayApplication.start(configuration: configuration, logger: .init(label: "dkim-e2e"), handleSignals: false)
                Issue.record("started with \(file)")
                await application.shutdown()
                try await application.run()
            } catch let error as RelayStartupError {
                #expect(error.description.contains(file), "\(error)")
                #expect(error.description.contains(reason), "\(error)")
                #expect(!error.description.contains("MII"), "key material in the error")
            }
        }
    }
}
