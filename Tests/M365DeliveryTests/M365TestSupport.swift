import Crypto
import Foundation
import RelayTestSupport
import Logging
import NIOCore
import RelayCore
import RelayStorage
import X509
import _CryptoExtras

/// An app certificate as Entra ID would hold it: self-signed, RSA 2048.
struct TestAppCertificate {
    let key: _RSA.Signing.PrivateKey
    let certificate: Certificate
    var certificatePEM: String { (try? certificate.serializeAsPEM().pemString) ?? "" }
    var pkcs1KeyPEM: String { key.pemRepresentation }
    var pkcs8KeyPEM: String { key.pkcs8PEMRepresentation }

    /// - Parameter keyIndex: which of `TestRSAKeys` (distinct certificates need distinct indices).
    init(commonName: String = "m365-relay test app", keyIndex: Int = 0) throws {
        key = try _RSA.Signing.PrivateKey(pemRepresentation: TestRSAKeys.pem[keyIndex])
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86_400),
            issuer: name, subject: name, signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions {}, issuerPrivateKey: Certificate.PrivateKey(key))
    }

    /// The certificate's DER, as the thumbprint covers it.
    var der: [UInt8] { (try? certificate.serializeAsPEM().derBytes) ?? [] }
}

/// A queued message's content, from memory, read in small chunks to exercise chunk handling.
final class TestContentReader: RelayContentReader, @unchecked Sendable {
    private var bytes: [UInt8]
    private var offset = 0
    private let chunk: Int

    init(_ bytes: [UInt8], chunk: Int = 7000) {
        self.bytes = bytes
        self.chunk = chunk
    }

    func read(maxLength: Int) throws -> ByteBuffer? {
        guard offset < bytes.count else { return nil }
        let end = min(bytes.count, offset + min(maxLength, chunk))
        defer { offset = end }
        return ByteBuffer(bytes: bytes[offset..<end])
    }

    func close() {}
}

func testMessage(sender: String, recipients: [String], size: Int, route: String = "test") -> RelayQueuedMessage {
    let envelope = RelayEnvelope(sender: sender, recipients: recipients, clientName: "test", clientAddress: "127.0.0.1", heloName: "client.test", route: route)
    let now = Date()
    return RelayQueuedMessage(
        id: RelayQueueID.make(millisecondsSinceEpoch: UInt64(now.timeIntervalSince1970 * 1000)), envelope: envelope,
        recipients: recipients.map { RelayRecipient(address: $0, status: .pending, lastReply: nil) }, state: .queued,
        size: size, receivedAt: now, nextAttemptAt: now, attempts: 0, lastError: nil)
}

let testLogger: Logger = {
    var logger = Logger(label: "m365-delivery-tests")
    logger.logLevel = .warning
    return logger
}()
