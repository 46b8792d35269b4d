import Crypto
import Foundation
import NIOCore
import RelayCore
import RelayTestSupport
import Testing
import _CryptoExtras
@testable import M365Delivery

/// DKIM signatures made by the relay, checked by an independent verifier
/// (dkimpy, against a loopback DNS server): a signature that dkimpy refuses
/// fails these tests, and so does one dkimpy accepts on a tampered message.
@Suite struct DKIMSigningTests {
    /// Keys generated for the test, loaded back from their PEM as the relay loads key files.
    static func rsaKey(pkcs8: Bool = false, index: Int = 0) throws -> DKIMSigningKey {
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: TestRSAKeys.pem[index])
        return try DKIMSigningKey(pemRepresentation: pkcs8 ? key.pkcs8PEMRepresentation : key.pemRepresentation)
    }

    static func ed25519Key() throws -> DKIMSigningKey {
        try DKIMSigningKey(pemRepresentation: Curve25519.Signing.PrivateKey().pemRepresentation)
    }

    /// A message with what relaxed canonicalisation has to cope with: a
    /// folded Subject, a repeated To, runs of whitespace, trailing blank lines.
    static let message = Array("""
        Received: from scanner (10.20.0.7) by relay.contoso.local; Mon, 1 Jun 2026 10:00:00 +0000\r
        From: "Scanner  Floor 2" <scanner@contoso.com>\r
        To: alice@example.com\r
        Subject: Scan\t from\r
         the second floor  \r
        Date: Mon, 1 Jun 2026 10:00:00 +0000\r
        Message-ID: <scan-1@contoso.com>\r
        To: bob@example.com\r
        MIME-Version: 1.0\r
        Content-Type: text/plain; charset=utf-8\r
        \r
        Page 1 of 1   \r
        \tindented line\r
        \r
        \r
        """.utf8)

    static func record(_ key: DKIMSigningKey, selector: String = "relay2026", domain: String = "contoso.com") -> [String: String] {
        ["\(selector)._domainkey.\(domain)": key.dnsRecord]
    }

    static var timestamp: Int { Int(Date().timeIntervalSince1970) }

    @Test(arguments: [false, true])
    func rsaSHA256VerifiesWithDkimpy(pkcs8: Bool) async throws {
        let key = try Self.rsaKey(pkcs8: pkcs8)
        #expect(key.algorithm == .rsaSHA256)
        let signer = DKIMSigner(domain: "contoso.com", selector: "relay2026", key: key)
        let signed = try signer.sign(message: Self.message, timestamp: Self.timestamp)
        let result = try await DKIMVerification.verify(signed, records: Self.record(key))
        #expect(result.allVerified, "dkimpy: \(result.signatures) \(result.log)")
        #expect(result.signatures.first?.algorithm == "rsa-sha256")
        #expect(result.queries == ["relay2026._domainkey.contoso.com."])
    }

    @Test func ed25519SHA256VerifiesWithDkimpy() async throws {
        let key = try Self.ed25519Key()
        #expect(key.algorithm == .ed25519SHA256)
        let signer = DKIMSigner(domain: "contoso.com", selector: "ed2026", key: key)
        let signed = try signer.sign(message: Self.message, timestamp: Self.timestamp)
        let result = try await DKIMVerification.verify(signed, records: Self.record(key, selector: "ed2026"))
        #expect(result.allVerified, "dkimpy: \(result.signatures) \(result.log)")
        #expect(result.signatures.first?.algorithm == "ed25519-sha256")
    }

    @Test func tamperedMessagesFailVerification() async throws {
        let key = try Self.rsaKey()
        let signer = DKIMSigner(domain: "contoso.com", selector: "relay2026", key: key)
        let signed = String(decoding: try signer.sign(message: Self.message, timestamp: Self.timestamp), as: UTF8.self)
        // A changed body, a changed signed header, and the wrong key in DNS.
        let body = Array(signed.replacingOccurrences(of: "Page 1 of 1", with: "Page 1 of 2").utf8)
        let header = Array(signed.replacingOccurrences(of: "Subject: Scan", with: "Subject: Scam").utf8)
        let results = [
            try await DKIMVerification.verify(body, records: Self.record(key)),
            try await DKIMVerification.verify(header, records: Self.record(key)),
            try await DKIMVerification.verify(Array(signed.utf8), records: Self.record(try Self.rsaKey(index: 1))),
        ]
        for result in results {
            #expect(result.signatures.count == 1)
            #expect(!result.allVerified, "a tampered message verified: \(result.log)")
        }
        #expect(results[0].signatures.first?.error?.contains("body hash mismatch") == true)
        // Whitespace changes that relaxed canonicalisation forgives still verify.
        let respaced = Array(signed.replacingOccurrences(of: "Page 1 of 1", with: "Page  1 of\t1").utf8)
        #expect(try await DKIMVerification.verify(respaced, records: Self.record(key)).allVerified)
    }

    @Test func signatureFieldIsFoldedUnder78Columns() throws {
        let signer = DKIMSigner(domain: "contoso.com", selector: "relay2026", key: try Self.rsaKey())
        let signed = String(decoding: try signer.sign(message: Self.message, timestamp: 1_780_000_000), as: UTF8.self)
        let field = try #require(signed.components(separatedBy: "\r\nReceived:").first)
        let unfolded = field.replacingOccurrences(of: "\r\n\t", with: " ")
        #expect(unfolded.hasPrefix("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=contoso.com; s=relay2026; t=1780000000;"))
        // Each To is named once, bottom-up; absent Cc and Reply-To are not.
        #expect(unfolded.replacingOccurrences(of: ": ", with: ":").contains("h=From:To:To:Subject:Date:Message-ID:MIME-Version:Content-Type;"))
        for line in field.components(separatedBy: "\r\n") {
            #expect(line.count < 78, "line of \(line.count): \(line)")
        }
    }

    @Test func keysThatMayNotSignAreRefused() throws {
        let small = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        #expect(throws: DKIMError.self) { try DKIMSigningKey(pemRepresentation: small.pemRepresentation) }
        do throws(DKIMError) {
            _ = try DKIMSigningKey(pemRepresentation: small.pemRepresentation)
        } catch {
            #expect(error.code == .keyTooSmall)
            #expect(error.description.contains("1024 bits"))
        }
        let p256 = P256.Signing.PrivateKey().pemRepresentation
        for pem in [p256, "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            do throws(DKIMError) {
                _ = try DKIMSigningKey(pemRepresentation: pem)
                Issue.record("accepted \(pem.prefix(30))")
            } catch {
                #expect(error.code == .unreadableKey)
                #expect(!error.description.contains("MII"), "the error shows key material")
            }
        }
    }

    /// The README's key commands: what openssl makes, the relay reads.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")))
    func keysMadeByOpenSSLLoad() async throws {
        let directory = TemporaryDirectory("dkim-openssl")
        let commands: [([String], DKIMSigningKey.Algorithm)] = [
            (["genrsa", "-out", directory.file("pkcs8.key"), "2048"], .rsaSHA256),
            (["genrsa", "-traditional", "-out", directory.file("pkcs1.key"), "2048"], .rsaSHA256),
            (["genpkey", "-algorithm", "ed25519", "-out", directory.file("ed.key")], .ed25519SHA256),
            (["genpkey", "-algorithm", "x25519", "-out", directory.file("x.key")], .ed25519SHA256),
        ]
        for (arguments, algorithm) in commands {
            let made = try await ExternalProcess.run("/usr/bin/openssl", arguments)
            try #require(made.status == 0, "\(made.stderr)")
            let pem = try String(contentsOfFile: arguments[arguments.firstIndex(of: "-out")! + 1], encoding: .utf8)
            if arguments.contains("x25519") {
                // An X25519 key is 32 octets too, but not a signing key.
                #expect(throws: DKIMError.self) { try DKIMSigningKey(pemRepresentation: pem) }
            } else {
                #expect(try DKIMSigningKey(pemRepresentation: pem).algorithm == algorithm, "\(arguments)")
            }
        }
    }

    // MARK: Signing at delivery

    @Test func deliverySignerPicksTheKeysOfTheSenderDomain() async throws {
        let rsa = try Self.rsaKey(), ed = try Self.ed25519Key(), other = try Self.rsaKey(index: 1)
        let signer = RelayDKIMSigner(signers: [
            DKIMSigner(domain: "Contoso.com", selector: "rsa", key: rsa),
            DKIMSigner(domain: "contoso.com", selector: "ed", key: ed),
            DKIMSigner(domain: "fabrikam.com", selector: "f", key: other),
        ], logger: testLogger)
        #expect(signer.signers(forDomain: "contoso.com").map(\.selector) == ["rsa", "ed"])
        #expect(signer.signers(forDomain: "mail.CONTOSO.com.").map(\.selector) == ["rsa", "ed"], "a subdomain takes its parent's keys")
        #expect(signer.signers(forDomain: "notcontoso.com").isEmpty)
        #expect(signer.signers(forDomain: "example.com").isEmpty)

        // Read in 7-octet chunks: header end and trailing blank lines fall across chunk boundaries.
        let message = testMessage(sender: "bounce@fabrikam.com", recipients: ["alice@example.com"], size: Self.message.count)
        let content = TestContentReader(Self.message, chunk: 7)
        let signed = try signer.signing(content, of: message, open: { TestContentReader(Self.message, chunk: 7) }, now: Date())
        #expect(signed !== content)
        var output: [UInt8] = []
        while var chunk = try signed.read(maxLength: 5) { output += chunk.readBytes(length: chunk.readableBytes) ?? [] }
        signed.close()
        let text = String(decoding: output, as: UTF8.self)
        #expect(text.hasSuffix(String(decoding: Self.message, as: UTF8.self)))
        #expect(text.components(separatedBy: "DKIM-Signature:").count == 3, "one signature per key of the From domain")
        var records = Self.record(rsa, selector: "rsa")
        records.merge(Self.record(ed, selector: "ed")) { $1 }
        let result = try await DKIMVerification.verify(output, records: records)
        #expect(result.allVerified, "\(result.signatures) \(result.log)")
        #expect(result.signatures.map(\.selector) == ["rsa", "ed"])
    }

    @Test func envelopeSenderDomainWhenThereIsNoFrom() async throws {
        let key = try Self.ed25519Key()
        let signer = RelayDKIMSigner(signers: [DKIMSigner(domain: "fabrikam.com", selector: "s1", key: key)], logger: testLogger)
        let bytes = Array("Subject: no From\r\n\r\nbody\r\n".utf8)
        let fields = try #require(try signer.signatureFields(reading: TestContentReader(bytes), envelopeSender: "app@fabrikam.com", now: Date()))
        let signed = Array(fields.readableBytesView) + bytes
        let result = try await DKIMVerification.verify(signed, records: Self.record(key, selector: "s1", domain: "fabrikam.com"))
        #expect(result.allVerified, "\(result.signatures) \(result.log)")
        // A domain without a key: nothing to add, and the content is passed on untouched.
        #expect(try signer.signatureFields(reading: TestContentReader(bytes), envelopeSender: "app@example.com", now: Date()) == nil)
        let message = testMessage(sender: "app@example.com", recipients: ["a@example.com"], size: bytes.count)
        let content = TestContentReader(bytes)
        #expect(try signer.signing(content, of: message, open: { TestContentReader(bytes) }, now: Date()) === content)
    }

    @Test func largeBodyIsHashedInChunks() async throws {
        // 3 MB of body, read 64 KiB at a time: the signature still verifies.
        let key = try Self.rsaKey()
        let signer = RelayDKIMSigner(signers: [DKIMSigner(domain: "contoso.com", selector: "big", key: key)], logger: testLogger)
        var bytes = Array("From: scanner@contoso.com\r\nTo: a@example.com\r\nSubject: big\r\n\r\n".utf8)
        let line = Array("0123456789 abcdefghij  \t ABCDEFGHIJ 0123456789 abcdefghij ABCDEFGHIJ\r\n".utf8)
        while bytes.count < 3_000_000 { bytes += line }
        bytes += Array("\r\n\r\n".utf8)
        let fields = try #require(try signer.signatureFields(reading: TestContentReader(bytes, chunk: 65_536), envelopeSender: "", now: Date()))
        let result = try await DKIMVerification.verify(Array(fields.readableBytesView) + bytes, records: Self.record(key, selector: "big"))
        #expect(result.allVerified, "\(result.signatures) \(result.log)")
    }
}

/// What the sandbox's Graph endpoint does with a signed message: `sendMail`
/// with MIME stores the bytes as sent (only a Bcc field removed), so the
/// signature verifies; the draft + upload-session path rebuilds the message
/// from JSON, where Graph takes only `x-` headers, so the signature is gone.
/// Real Graph re-renders MIME on both paths, so the README promises DKIM
/// only for the SMTP-based routes.
@Suite struct DKIMThroughSandboxGraphTests {
    @Test func sendMailKeepsTheSignatureAndTheDraftPathDropsIt() async throws {
        let harness = try await SandboxHarness()
        let tokens = try harness.tokenProvider()
        let key = try DKIMSigningTests.ed25519Key()
        let signer = RelayDKIMSigner(signers: [DKIMSigner(domain: "contoso.test", selector: "g1", key: key)], logger: testLogger)
        let content = Array("From: App <app@contoso.test>\r\nTo: alice@contoso.test\r\nSubject: Graph and DKIM\r\nMessage-ID: <g1@contoso.test>\r\n\r\nHello through Graph.\r\n".utf8)
        // An envelope-only recipient makes the transport add a Bcc field (unsigned, so harmless).
        let recipients = ["alice@contoso.test", "hidden@fabrikam.test"]
        let queued = testMessage(sender: "app@contoso.test", recipients: recipients, size: content.count)

        var mime = GraphTransport.Settings(graphURL: harness.baseURL, mailbox: nil)
        mime.largeMessages = .uploadSession
        var draft = mime
        draft.requestLimit = 16  // anything goes through a draft and an upload session
        for settings in [mime, draft] {
            let graph = GraphTransport(settings: settings, tokens: tokens, httpClient: harness.client, logger: testLogger)
            let signed = try signer.signing(TestContentReader(content), of: queued, open: { TestContentReader(content) }, now: Date())
            let outcome = await graph.deliver(queued, recipients: recipients, content: signed)
            signed.close()
            #expect(outcome.recipients.map(\.status) == [.delivered, .delivered], "\(outcome.summary)")
        }
        let stored = try harness.sandbox.mailStore.messages().sorted { $0.receivedAt < $1.receivedAt }
        try #require(stored.count == 2)
        let viaMIME = Array(try harness.sandbox.mailStore.content(of: stored[0]))
        let viaDraft = String(decoding: try harness.sandbox.mailStore.content(of: stored[1]), as: UTF8.self)
        let verification = try await DKIMVerification.verify(viaMIME, records: DKIMSigningTests.record(key, selector: "g1", domain: "contoso.test"))
        #expect(verification.allVerified, "\(verification.signatures) \(verification.log)")
        #expect(!viaDraft.contains("DKIM-Signature"))
        await tokens.shutdown()
        await harness.stop()
    }
}
